//! The generated Petstore client against Prism serving `specs/petstore/openapi.yaml` with
//! request validation: every operation is called, in each of its request media types,
//! and Prism must find nothing wrong with any request.
//!
//! Prism comes from `scripts/prism.sh` (the test command runs it first).

#[path = "common/prism.rs"]
mod prism;

use polvo_petstore::PetstoreClient;
use polvo_petstore::resources::pets::{
    DeletePetParams, ListPetsParams, ListPetsResponses, UploadPetPhotoMultipart,
};
use polvo_petstore::types::{Cat, Kind, NewPet, PetFilter, PetStatus, PetUpdate};
use prism::{Calls, Prism};

const SPEC: &str = "specs/petstore/openapi.yaml";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_petstore_operation_passes_prism_validation() {
    let prism = Prism::start(SPEC);
    let client = PetstoreClient::builder()
        .base_url(prism.url())
        .bearer_token("pt_live_contract")
        // The annotations' 10/s would only slow the test down; the limits are tested
        // in generator/tests/petstore_policy.rs.
        .rate_limit(1000)
        .build()
        .expect("client");
    let pets = client.pets();
    let mut calls = Calls::default();

    let params = ListPetsParams {
        limit: Some(20),
        starting_after: Some(41),
        tags: Some(vec!["friendly".into(), "small dog".into()]),
        filter: Some(PetFilter {
            status: Some(PetStatus::Available),
            born_after: Some("2020-01-31".into()),
        }),
        x_request_id: Some("req-1".into()),
    };
    let page = calls.check("listPets", pets.list(&params).await);
    if let Some(page) = page {
        assert!(
            matches!(page, ListPetsResponses::OkJson(_)),
            "JSON is asked for first: {page:?}"
        );
    }

    let new_pet = NewPet {
        name: "Rex".into(),
        kind: Kind::Cat(Cat {
            r#type: "cat".into(),
            indoor: Some(true),
        }),
        tag: Some(None),
        status: Some(PetStatus::Pending),
    };
    calls.check("createPet", pets.create(&new_pet).await);
    calls.check("getPet", pets.get(7).await);

    let update = PetUpdate {
        name: Some("Rex II".into()),
        status: Some(PetStatus::Adopted),
        metadata: Some([("color".to_owned(), "black and white".to_owned())].into()),
    };
    calls.check("updatePet", pets.update(7, &update).await);
    calls.check("updatePet", pets.update_form(7, &update).await);

    let delete = DeletePetParams {
        if_match: Some("\"v3\"".into()),
    };
    calls.check("deletePet", pets.delete(7, &delete).await);

    let photo = UploadPetPhotoMultipart {
        photo: ("rex.png".into(), vec![0x89, b'P', b'N', b'G'].into()),
        caption: Some("Rex at home".into()),
    };
    calls.check("uploadPetPhoto", pets.upload_photo(7, photo).await);
    calls.check("getPetPhoto", pets.photo(7).await);

    let owner = "0b5a6b4e-3c1d-4f5e-8a9b-2c3d4e5f6a7b";
    calls.check("getOwner", client.people().get(owner).await);

    calls.finish(&prism, SPEC);
}

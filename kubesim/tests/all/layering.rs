//! kubesim's modules form no import cycle: data flows one way, from the
//! shared vocabulary (store, resources, object helpers) up to the API server,
//! the controllers and the wiring in `lib.rs`.

use std::path::Path;

use crate::layers;

#[test]
fn kubesim_has_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = layers::explain_cycles(&src, "lib.rs");
    assert!(found.is_empty(), "{found}");
    // The reader saw the crate: a cycle-free result from an empty graph
    // would prove nothing.
    let graph = layers::read_crate(&src, "lib.rs");
    assert!(graph.edges.len() > 30, "{} modules read", graph.edges.len());
    assert!(graph.edges.values().map(|e| e.len()).sum::<usize>() > 100);
}

#[test]
fn the_api_server_and_the_shared_state_never_import_the_controllers_logic() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = layers::read_crate(&src, "lib.rs");
    let up = layers::edges_between(&graph, &["api"], &["controllers"]);
    assert!(up.is_empty(), "{}", up.join("\n"));
    // The shared state holds the controllers' state types only.
    for low in [&["sim"][..], &["store"], &["config"], &["admission"]] {
        let up: Vec<String> = layers::edges_between(&graph, low, &["controllers"])
            .into_iter()
            .filter(|e| !e.contains("::state "))
            .collect();
        assert!(up.is_empty(), "{}", up.join("\n"));
    }
}

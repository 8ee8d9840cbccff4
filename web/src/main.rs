//! Entry point of the wasm binary that trunk builds: renders [`web::app::App`].

fn main() {
    yew::Renderer::<web::app::App>::new().render();
}

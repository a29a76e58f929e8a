fn main() {
    rpcgen::Builder::new()
        .out_name("some_api")
        .compile(&["../../schemas/some_api/some_api.service"])
        .expect("the SomeApi schemas compile");
}

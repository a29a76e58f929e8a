fn main() {
    rpcgen::Builder::new()
        .out_name("echo")
        .compile(&["../../schemas/echo/echo.service"])
        .expect("the Echo schemas compile");
}

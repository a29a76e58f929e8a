fn main() {
    rpcgen::Builder::new()
        .out_name("mailbox")
        .compile(&["../../schemas/mailbox/mailbox.service"])
        .expect("the mailbox's schemas compile");
}

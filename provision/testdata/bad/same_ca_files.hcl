cluster "t" {
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
  pki {
    route_ca_bundle  = "ca/bundle.crt"
    client_ca_bundle = "./ca/../ca/bundle.crt"
  }
}
node "a" {
  addresses = ["127.0.0.1"]
}
# want: 5:24 Route CA and client CA are the same file

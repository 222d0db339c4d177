# One host running membershipd under systemd: no routes, no cluster
# password, control-plane state in SQLite. Replace the age recipient with
# your own (age-keygen -y ~/.config/age/key): it encrypts the CA keys.

cluster "solo" {
  bus_auth        = "enforce"
  js_sync         = "always"
  client_networks = ["192.168.1.0/24"]

  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
}

node "solo" {
  addresses = ["192.168.1.10"]
  dns       = ["solo.home.example"]
  target {
    scope   = "system"
    manager = "systemd"
  }
}

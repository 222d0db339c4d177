# One host running membershipd under systemd: no routes, no cluster
# password, control-plane state in SQLite. No key ships with it: the CA
# keys are sealed to your unibus identity (unibus keygen).

cluster "solo" {
  bus_auth        = "enforce"
  js_sync         = "always"
  client_networks = ["192.168.1.0/24"]
}

node "solo" {
  addresses = ["192.168.1.10"]
  dns       = ["solo.home.example"]
  target {
    scope   = "system"
    manager = "systemd"
  }
}

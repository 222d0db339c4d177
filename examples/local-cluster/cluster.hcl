# Three membershipd nodes on this machine, on loopback ports, run by
# unibus's own supervisor (manager = "exec") rather than systemd. Each
# node's files go under .root/<node>/ here, which git ignores.
#
# Build the daemon first (make build); binary paths are relative to this
# folder.

locals {
  base = 18000
  recipients = {
    n1 = "age1zykx4qk8w9cgrnaty2ymmc8jcefle0s529pfl4hva90knf0t2qpsuthh3a"
    n2 = "age1uccm34au2md8lgm5wavlpwg6k4mlpqvfqzm4gcych7xxprymuc6q6xzrf2"
    n3 = "age1a7kx459f4sj5lg23rxx3nsc7lz7j0qm6zg36n2hd3hjdaqh4fgxshzjzs3"
  }
}

cluster "local" {
  bus_auth    = "enforce"
  kv_replicas = 3
  monitor     = true

  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]

  rollout {
    order         = ["n1", "n2", "n3"]
    ready_timeout = "30s"
  }
}

node "n1" {
  addresses     = ["127.0.0.1"]
  bind          = "127.0.0.1"
  age_recipient = local.recipients.n1
  ports {
    http    = local.base + 10
    nats    = local.base + 11
    cluster = local.base + 12
    monitor = local.base + 13
  }
  target {
    scope   = "user"
    root    = ".root/n1"
    manager = "exec"
    binary  = "../../bin/membershipd"
  }
}

node "n2" {
  addresses     = ["127.0.0.1"]
  bind          = "127.0.0.1"
  age_recipient = local.recipients.n2
  ports {
    http    = local.base + 20
    nats    = local.base + 21
    cluster = local.base + 22
    monitor = local.base + 23
  }
  target {
    scope   = "user"
    root    = ".root/n2"
    manager = "exec"
    binary  = "../../bin/membershipd"
  }
}

node "n3" {
  addresses     = ["127.0.0.1"]
  bind          = "127.0.0.1"
  age_recipient = local.recipients.n3
  ports {
    http    = local.base + 30
    nats    = local.base + 31
    cluster = local.base + 32
    monitor = local.base + 33
  }
  target {
    scope   = "user"
    root    = ".root/n3"
    manager = "exec"
    binary  = "../../bin/membershipd"
  }
}

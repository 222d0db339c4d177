# Three membershipd nodes on this machine, on loopback ports, run by
# unibus's own supervisor (manager = var.manager) rather than systemd. Each
# node's files go under .root/<node>/ here, which git ignores.
#
#   make build && bin/unibus apply -auto-approve examples/local-cluster
#
# No key is made beforehand: apply makes each node's age identity on the
# node (.root/<node>/.config/unibus/age-identity), and your operator
# identity ($UNIBUS_IDENTITY, default ~/.config/unibus/identity) if you
# have none; that identity opens the CA keys and the cluster password, and
# it is the first admin of the cluster's control plane. Binary paths are
# relative to this folder.

variable "manager" {
  description = "exec (unibus's own supervisor) or systemd (your user manager; it must load .root/n1..n3/.config, see README)"
  default     = "exec"
}

variable "monitor" {
  description = "open each node's nats-server monitor on loopback (-var monitor=true)"
  default     = false
}

locals {
  base = 18000
}

cluster "local" {
  bus_auth    = "enforce"
  kv_replicas = 3
  monitor     = var.monitor

  rollout {
    order         = ["n1", "n2", "n3"]
    ready_timeout = "30s"
  }
}

node "n1" {
  addresses = ["127.0.0.1"]
  bind      = "127.0.0.1"
  ports {
    http    = local.base + 10
    nats    = local.base + 11
    cluster = local.base + 12
    monitor = local.base + 13
  }
  target {
    scope   = "user"
    root    = ".root/n1"
    manager = var.manager
    binary  = "../../bin/membershipd"
  }
}

node "n2" {
  addresses = ["127.0.0.1"]
  bind      = "127.0.0.1"
  ports {
    http    = local.base + 20
    nats    = local.base + 21
    cluster = local.base + 22
    monitor = local.base + 23
  }
  target {
    scope   = "user"
    root    = ".root/n2"
    manager = var.manager
    binary  = "../../bin/membershipd"
  }
}

node "n3" {
  addresses = ["127.0.0.1"]
  bind      = "127.0.0.1"
  ports {
    http    = local.base + 30
    nats    = local.base + 31
    cluster = local.base + 32
    monitor = local.base + 33
  }
  target {
    scope   = "user"
    root    = ".root/n3"
    manager = var.manager
    binary  = "../../bin/membershipd"
  }
}

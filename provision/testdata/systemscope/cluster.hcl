# Three system-scope nodes on loopback, each under a root of its own, for
# TestSystemScopeUnderSystemd: the units run as a DynamicUser= under real
# systemd, reading what apply installed.
variable "ports" {}
variable "roots" {}
variable "binary" {}
variable "operator" {}

locals {
  p = [for s in split(",", var.ports) : tonumber(s)]
}

cluster "sys" {
  operator_recipients = [var.operator]
  bus_auth            = "enforce"
  kv_replicas         = 3
}

node "n1" {
  addresses = ["127.0.0.1"]
  bind      = "127.0.0.1"
  ports {
    http    = local.p[0]
    nats    = local.p[1]
    cluster = local.p[2]
    monitor = local.p[3]
  }
  target {
    scope   = "system"
    root    = "${var.roots}/n1"
    manager = "systemd"
    binary  = var.binary
  }
}

node "n2" {
  addresses = ["127.0.0.1"]
  bind      = "127.0.0.1"
  ports {
    http    = local.p[4]
    nats    = local.p[5]
    cluster = local.p[6]
    monitor = local.p[7]
  }
  target {
    scope   = "system"
    root    = "${var.roots}/n2"
    manager = "systemd"
    binary  = var.binary
  }
}

node "n3" {
  addresses = ["127.0.0.1"]
  bind      = "127.0.0.1"
  ports {
    http    = local.p[8]
    nats    = local.p[9]
    cluster = local.p[10]
    monitor = local.p[11]
  }
  target {
    scope   = "system"
    root    = "${var.roots}/n3"
    manager = "systemd"
    binary  = var.binary
  }
}

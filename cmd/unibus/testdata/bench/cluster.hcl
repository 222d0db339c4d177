# The spec of BenchmarkApplyManagers: the local cluster, roots and manager
# given as variables.
variable "ports" {
  description = "twelve free ports, comma-separated: http, nats, cluster, monitor of n1, n2, n3"
}
variable "binary" {
  description = "membershipd"
}
variable "roots" {
  description = "the folder of the node roots n1, n2, n3"
}
variable "manager" {
  description = "exec or systemd"
}
variable "monitor" {
  default = false
}
variable "operators" {
  description = "operator age recipients, comma-separated; none: the operator's own identity"
  default     = ""
}

locals {
  p = [for s in split(",", var.ports) : tonumber(s)]
}

cluster "t" {
  operator_recipients = var.operators == "" ? [] : split(",", var.operators)
  bus_auth    = "enforce"
  kv_replicas = 3
  monitor     = var.monitor
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
    scope   = "user"
    root    = "${var.roots}/n1"
    manager = var.manager
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
    scope   = "user"
    root    = "${var.roots}/n2"
    manager = var.manager
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
    scope   = "user"
    root    = "${var.roots}/n3"
    manager = var.manager
    binary  = var.binary
  }
}

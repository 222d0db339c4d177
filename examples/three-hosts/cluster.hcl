# Three hosts on a private network, each running membershipd under systemd
# (system scope, dynamic user), reached over ssh as root. To log in as a
# user that is not root, give each target ssh = "ops@magnus..." and
# sudo = true (passwordless sudo for that user on the node).
#
# No key ships with the example. The operator's recipient is your unibus
# identity's (unibus keygen; unibus apply makes one if missing). Each
# node's age identity is made on the node by apply and never leaves it.
#
#   unibus plan examples/three-hosts
#   unibus apply examples/three-hosts
#   unibus status examples/three-hosts

variable "domain" {
  default     = "prod.example"
  description = "DNS zone the hosts live in"
}

variable "network" {
  default     = "10.20.0.0/24"
  description = "the hosts' private network"
}

# Optional pins of the nodes' age recipients. Left null, unibus plan and
# apply read each node's over ssh (apply first makes the identity on the
# node, where it stays). unibus render, which reaches no node, needs them.
variable "magnus" {
  default     = null
  description = "magnus's age recipient: membershipd age-keygen -y /etc/unibus/age-identity on magnus"
}
variable "homer" {
  default     = null
  description = "homer's age recipient"
}
variable "datardos" {
  default     = null
  description = "datardos's age recipient"
}

locals {
  ports = { http = 8470, nats = 4250, cluster = 6250, monitor = 8222 }
}

cluster "prod" {
  bus_auth        = "enforce"
  kv_replicas     = 3
  js_sync         = "always"
  monitor         = true
  client_networks = [var.network]

  pki {
    key_type     = "p256"
    validity     = "365d"
    renew_before = "30d"
  }

  rollout {
    order            = ["datardos", "homer", "magnus"]
    ready_timeout    = "2m"
    converge_timeout = "5m"
  }
}

node "magnus" {
  addresses     = [cidrhost(var.network, 11)]
  dns           = ["magnus.${var.domain}"]
  ports         { 
    http    = local.ports.http
    nats    = local.ports.nats
    cluster = local.ports.cluster
    monitor = local.ports.monitor
  }
  age_recipient = var.magnus
  target {
    scope   = "system"
    ssh     = "root@magnus.${var.domain}"
    manager = "systemd"
  }
}

node "homer" {
  addresses     = [cidrhost(var.network, 12)]
  dns           = ["homer.${var.domain}"]
  age_recipient = var.homer
  target {
    scope   = "system"
    ssh     = "root@homer.${var.domain}"
    manager = "systemd"
  }
}

node "datardos" {
  addresses     = [cidrhost(var.network, 13)]
  dns           = ["datardos.${var.domain}"]
  age_recipient = var.datardos
  target {
    scope   = "system"
    ssh     = "root@datardos.${var.domain}"
    manager = "systemd"
  }
}

# Three hosts on a private network, each running membershipd under systemd
# (system scope, dynamic user), reached over ssh.
#
# No key ships with the example. The operator's recipient is your unibus
# identity's (unibus keygen; unibus apply makes one if missing). Each
# node's recipient is its own age identity's, made on the node and never
# copied off it; until unibus reads it over ssh, give it as a variable:
#
#   ssh root@magnus 'age-keygen -o /etc/unibus/age-identity'   # once per host
#   unibus plan -var magnus=$(ssh root@magnus age-keygen -y /etc/unibus/age-identity) \
#               -var homer=... -var datardos=... examples/three-hosts

variable "domain" {
  default     = "prod.example"
  description = "DNS zone the hosts live in"
}

variable "network" {
  default     = "10.20.0.0/24"
  description = "the hosts' private network"
}

variable "magnus" {
  description = "magnus's age recipient: age-keygen -y /etc/unibus/age-identity on magnus"
}
variable "homer" {
  description = "homer's age recipient"
}
variable "datardos" {
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

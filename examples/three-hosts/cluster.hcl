# Three hosts on a private network, each running membershipd under systemd
# (system scope, dynamic user), reached over ssh. Replace the age
# recipients with your own: the operator's (age-keygen -y ~/.config/age/key)
# and each node's (age-keygen -o /etc/unibus/age-identity on the node,
# then age-keygen -y /etc/unibus/age-identity).

variable "domain" {
  default     = "prod.example"
  description = "DNS zone the hosts live in"
}

variable "network" {
  default     = "10.20.0.0/24"
  description = "the hosts' private network"
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

  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]

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
  age_recipient = "age1zykx4qk8w9cgrnaty2ymmc8jcefle0s529pfl4hva90knf0t2qpsuthh3a"
  target {
    scope   = "system"
    ssh     = "root@magnus.${var.domain}"
    manager = "systemd"
  }
}

node "homer" {
  addresses     = [cidrhost(var.network, 12)]
  dns           = ["homer.${var.domain}"]
  age_recipient = "age1uccm34au2md8lgm5wavlpwg6k4mlpqvfqzm4gcych7xxprymuc6q6xzrf2"
  target {
    scope   = "system"
    ssh     = "root@homer.${var.domain}"
    manager = "systemd"
  }
}

node "datardos" {
  addresses     = [cidrhost(var.network, 13)]
  dns           = ["datardos.${var.domain}"]
  age_recipient = "age1a7kx459f4sj5lg23rxx3nsc7lz7j0qm6zg36n2hd3hjdaqh4fgxshzjzs3"
  target {
    scope   = "system"
    ssh     = "root@datardos.${var.domain}"
    manager = "systemd"
  }
}

locals {
  names = ["a", "b", "c"]
  # locals may refer to locals declared later, and to variables
  ports = { for i, n in local.names : n => var.base_port + 10 * i }
}

node "a" {
  addresses     = ["127.0.0.1"]
  age_recipient = "age1zykx4qk8w9cgrnaty2ymmc8jcefle0s529pfl4hva90knf0t2qpsuthh3a"
  ports { http = local.ports.a }
}

node "b" {
  addresses     = ["127.0.0.2"]
  age_recipient = "age1uccm34au2md8lgm5wavlpwg6k4mlpqvfqzm4gcych7xxprymuc6q6xzrf2"
  ports { http = local.ports.b }
}

node "c" {
  addresses     = ["127.0.0.3"]
  age_recipient = "age1a7kx459f4sj5lg23rxx3nsc7lz7j0qm6zg36n2hd3hjdaqh4fgxshzjzs3"
  ports { http = local.ports.c }
}

cluster "t" {
  js_sync             = "sometimes"
  client_networks     = ["10.0.0.0/8", "everyone"]
  operator_recipients = ["age1notakey"]
  pki {
    key_type = "rsa"
    validity = "-3d"
  }
}
node "A_1" {
  addresses     = ["10.0.0.1", "ten.zero.zero.two"]
  dns           = ["ok.test", "not_ok!.test"]
  age_recipient = "ssh-ed25519 AAAA"
  ports {
    http = 80
  }
  target {
    scope   = "global"
    manager = "cron"
  }
}
node "b" {
  addresses     = ["10.0.0.2"]
  age_recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
}
# want: 10:6 Invalid node name
# want: 11:32 Invalid address
# want: 12:31 Invalid DNS name
# want: 13:19 Invalid age recipient
# want: 15:12 Invalid port
# want: 18:15 Invalid scope
# want: 19:15 Invalid manager
# want: 24:19 Placeholder age recipient
# want: 2:25 Invalid js_sync
# want: 3:40 Invalid network
# want: 4:26 Invalid age recipient
# want: 6:16 Invalid key_type
# want: 7:16 Invalid duration
# want: warning 1:9 kv_replicas = 1 is not highly available

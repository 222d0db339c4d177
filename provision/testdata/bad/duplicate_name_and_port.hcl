cluster "t" {
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
  kv_replicas         = 1
}
node "a" {
  addresses     = ["127.0.0.1"]
  dns           = ["a.test", "shared.test"]
  age_recipient = "age1zykx4qk8w9cgrnaty2ymmc8jcefle0s529pfl4hva90knf0t2qpsuthh3a"
  ports {
    http = 9000
    nats = 9000
  }
}
node "b" {
  addresses     = ["127.0.0.1"]
  dns           = ["b.test", "shared.test"]
  age_recipient = "age1uccm34au2md8lgm5wavlpwg6k4mlpqvfqzm4gcych7xxprymuc6q6xzrf2"
  ports {
    http    = 9000
    nats    = 9002
    cluster = 9003
  }
}
# want: 11:12 Duplicate port
# want: 14:1 Duplicate port
# want: 16:30 Duplicate name
# want: 19:15 Duplicate port
# want: warning 3:25 kv_replicas = 1 is not highly available

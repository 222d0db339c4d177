cluster "t" {
  kv_replicas         = 1
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
}
node "a" {
  addresses     = ["10.0.0.1"]
  dns           = ["a.prod.test"]
  route_host    = "a.other.test"
  age_recipient = "age1zykx4qk8w9cgrnaty2ymmc8jcefle0s529pfl4hva90knf0t2qpsuthh3a"
}
node "b" {
  addresses     = ["10.0.0.2"]
  dns           = ["b.prod.test"]
  route_host    = "10.0.0.20"
  age_recipient = "age1uccm34au2md8lgm5wavlpwg6k4mlpqvfqzm4gcych7xxprymuc6q6xzrf2"
}
# want: 14:19 Route address not covered by the certificate
# want: 8:19 Route address not covered by the certificate
# want: warning 2:25 kv_replicas = 1 is not highly available

cluster "t" {
  bus_auth            = "warn"
  kv_replicas         = 1
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
}
node "a" {
  addresses     = ["10.0.0.1"]
  age_recipient = "age1zykx4qk8w9cgrnaty2ymmc8jcefle0s529pfl4hva90knf0t2qpsuthh3a"
}
node "b" {
  addresses     = ["10.0.0.2"]
  age_recipient = "age1uccm34au2md8lgm5wavlpwg6k4mlpqvfqzm4gcych7xxprymuc6q6xzrf2"
}
# want: 2:25 Cluster without bus_auth enforce
# want: warning 3:25 kv_replicas = 1 is not highly available

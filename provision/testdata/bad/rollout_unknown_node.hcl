cluster "t" {
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
  rollout {
    order         = ["a", "bee", "c", "a"]
    ready_timeout = "soon"
    samples       = 0
  }
}
node "a" {
  addresses     = ["10.0.0.1"]
  age_recipient = "age1zykx4qk8w9cgrnaty2ymmc8jcefle0s529pfl4hva90knf0t2qpsuthh3a"
}
node "b" {
  addresses     = ["10.0.0.2"]
  age_recipient = "age1uccm34au2md8lgm5wavlpwg6k4mlpqvfqzm4gcych7xxprymuc6q6xzrf2"
}
node "c" {
  addresses     = ["10.0.0.3"]
  age_recipient = "age1a7kx459f4sj5lg23rxx3nsc7lz7j0qm6zg36n2hd3hjdaqh4fgxshzjzs3"
}
# want: 4:27 Unknown node in rollout order
# want: 4:39 Node listed twice in rollout order
# want: 5:21 Invalid duration
# want: 6:21 Invalid samples

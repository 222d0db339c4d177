cluster "t" {
  kv_replicas         = "three"
  monitor             = "sometimes"
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
}
node "a" {
  addresses = ["127.0.0.1"]
  ports { http = "high" }
}
# want: 2:26 Unsuitable value type
# want: 3:26 Unsuitable value type
# want: 8:19 Unsuitable value type

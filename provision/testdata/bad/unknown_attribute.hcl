cluster "t" {
  colour              = "blue"
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
}
node "a" {
  addresses = ["127.0.0.1"]
  prots { http = 9000 }
}
# want: 2:3 Unsupported argument
# want: 7:3 Unsupported block type

variable "base_port" {
  default = 9100
}

cluster "split" {
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
  rollout {
    order = [for n in local.names : n if n != "b"]
  }
}

cluster "t" {}
node "a" {
  addresses = ["10.0.0.1"]
  target {
    sudo = true
  }
}
# want: 5:12 sudo without ssh

cluster "t" {}
node "a" {
  addresses = ["10.0.0.1"]
  target {
    ssh    = "unibus@10.0.0.1"
    scope  = "user"
    root   = "home/unibus"
    binary = "bin/membershipd"
  }
}
# want: 7:14 Relative path on a remote node
# want: 8:14 Relative path on a remote node

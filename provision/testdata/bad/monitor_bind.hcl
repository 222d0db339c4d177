cluster "t" {
  monitor = true
}
node "a" {
  addresses    = ["10.0.0.1"]
  monitor_bind = "0.0.0.0"
}
# want: 6:18 Monitor bound beyond loopback

locals {
  key = "AGE-SECRET-KEY-150GEVQVDMM0NL39C8M07RT0CVVCP24XKQS07MTU5QKEDN9SE6SJQLFTA88"
}
cluster "t" {
  cluster_pass        = "hunter2"
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
}
node "a" {
  addresses    = ["127.0.0.1"]
  age_identity = local.key
}
# want: 10:3 Secret written inline
# want: 2:9 Secret written inline
# want: 5:3 Secret written inline

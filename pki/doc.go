// Package pki is the certificate tooling of unibus: the TLS policy every
// listener uses, the route CA and the separate client CA of a cluster, node
// and client certificates, renewal decisions, and PEM files with safe
// permissions.
//
// It is for the unibus command (unibus pki, plan/apply), for membershipd,
// which loads its listeners' configs from here, and for tests that need real
// certificates.
package pki

// Package pki is the certificate tooling of unibus: the TLS policy every
// listener uses, the route CA and the separate client CA of a cluster, node
// and client certificates, renewal decisions, and PEM files with safe
// permissions.
//
// It is for the unibus command (unibus pki, and plan/apply, which issue a
// cluster's certificates from its spec), for membershipd, which loads its
// listeners' configs from here ([ServerConfig], [RouteConfig]), and for
// tests that need real certificates.
//
// # Two trust roots
//
// Every cluster has a route CA, which authenticates nodes to each other on
// the route port, and a client CA, which signs the nodes' client-facing
// server certificates and the clients' certificates. They have separate
// keys and subjects, so a certificate of one never verifies against the
// other; extended key usages keep each leaf to its role (a client
// certificate cannot serve, a client-facing server certificate cannot
// authenticate as a client).
//
// # Policy as data
//
// [CATemplate] and [LeafTemplate] build unsigned certificates from a
// [CASpec] or a desired [Leaf]; [CA.Issue] only adds a key and a signature.
// [Decide] compares a desired Leaf with an existing certificate and says
// keep or renew, and why. [Bundle] models trust bundles and CA rotation
// with overlap.
//
// # Files
//
// [Dir] is the PKI folder layout. Files are written with
// [WriteFileAtomic] (keys 0600, certificates 0644), an existing key is
// never replaced unless asked, and CA keys may be stored age-encrypted
// ([EncryptKey]); they are then decrypted only in memory. Errors about a
// file are [*FileError]s that name it.
package pki

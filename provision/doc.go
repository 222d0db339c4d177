// Package provision is the declarative side of unibus: the HCL cluster
// spec, its checks, and the files it renders for every node.
//
// It is for the unibus command (render, plan; apply builds on the same
// values) and for tests that need a real cluster's files.
//
// # The spec
//
// [Load] reads one .hcl file or every .hcl file of a folder as one spec: a
// cluster block, one node block per host, variable blocks (set with -var)
// and locals, with the usual functions (format, join, concat, range,
// cidrhost...). Every mistake is an [hcl.Diagnostic] with the range it
// comes from — checks made after decoding too, thanks to the def_range and
// attr_value_range tags the schema keeps — and all of them are reported at
// once; [WriteDiagnostics] prints them with the offending source line.
//
// # What a node gets
//
// [Render] turns a [Spec] into a [Desired]: for every node, each file with
// its path relative to the node's root, its mode, its content, and whether
// it is secret. The membershipd unit (membershipd-cluster.service in a
// cluster, unibus-membershipd.service for a single node) and its drop-ins
// come from package templates through package units; certificates come from
// package pki; the cluster password is sealed with age to each node's
// recipient. No CA private key is ever part of it, and no secret is in a
// command line, an environment variable or a world-readable file: the node
// keys, the sealed password and the node's own age identity reach
// membershipd as systemd credentials.
//
// # Plan, execute, render
//
// [Plan] is the pure step: from the spec, the operator state
// ([ObserveOperator]) and the nodes as observed ([ObserveNodes], through a
// [Transport]: local files today) it computes every node's files and the
// operator-state changes they need ([OpChange]: create the CAs, issue a
// leaf, seal the password to a node, reseal for new operators) as values.
// A file only apply can produce is Pending ("known after apply"). [Execute]
// carries the changes out and plans again for the final [Desired];
// [Render] is both, with no node observed. [MakePlan] adds the [Diff] per
// node (add, change, remove, restart, each with its reason) and the
// [PlanDoc] that plan prints, saves and apply checks ([Planned.Stale]).
//
// # Operator state
//
// Beside the spec, in state_dir (default .unibus, which must not go into
// git), Render keeps the PKI folder (CA keys age-encrypted to
// operator_recipients), the cluster password sealed to the operators, and
// each node's sealed copy. It creates them once and reuses them, so
// rendering twice gives byte-identical files, and it needs an operator
// identity only when something must be signed or sealed anew.
package provision

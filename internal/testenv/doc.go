// Package testenv starts a real etcd and a real kube-apiserver for tests, so controllers and
// apply logic are exercised against the same admission, validation and watch behaviour they
// meet in a cluster. One Env per test binary is the intended use, shared through TestMain;
// ports are chosen at run time so test binaries can run side by side.
//
// The binaries come from `make testenv`, which installs etcd from Debian and builds
// kube-apiserver from the Go module proxy into .cache/testenv/bin.
package testenv

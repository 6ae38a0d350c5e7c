// Package deploy holds no code: the directory holds herd's packaging for more than one machine (a
// Dockerfile building a static image FROM scratch, a compose file for three nodes and the router,
// Kubernetes manifests) and, in deploy_test.go, the test that keeps them consistent with the
// config package: every config file loads, every manifest parses, and the ports the containers
// declare are the ones the configs listen on.
package deploy

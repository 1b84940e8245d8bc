//go:build tools

// Package tools pins the Go programs the tests build: compose-check, dockerfile-check and
// k8s-check (this module) and actionlint, which check what no engine or cluster runs here, and
// Toxiproxy, through which the chaos suite slows and cuts the services' connections.
package tools

import (
	_ "github.com/Shopify/toxiproxy/v2/cmd/server"
	_ "github.com/rhysd/actionlint/cmd/actionlint"
)

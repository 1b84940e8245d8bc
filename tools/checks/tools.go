//go:build tools

// Package tools pins the Go programs `make test` builds to check what no engine runs here:
// compose-check (this module) and actionlint, for .github/workflows.
package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"

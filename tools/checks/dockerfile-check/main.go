// dockerfile-check reads a Dockerfile as BuildKit (the builder of `docker build` and
// `docker compose build`) reads it: its parser, its instruction parsing, and the build checks
// it applies while parsing (those of `docker build --check` that need no build context). It prints the stages (name, base image, the stages each copies
// from) and the warnings as JSON for the tests to read, or the parser's error and exit status 1.
//
//	cd tools/checks && go run ./dockerfile-check ../../Dockerfile
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

type stage struct {
	Name       string            `json:"name"`
	Base       string            `json:"base"`
	CopyFrom   []string          `json:"copy_from"`
	Commands   []string          `json:"commands"`
	Runs       []string          `json:"runs"`
	Env        map[string]string `json:"env"`
	User       string            `json:"user"`
	Entrypoint []string          `json:"entrypoint"`
}

type warning struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

type report struct {
	Args     map[string]string `json:"args"`
	Stages   []stage           `json:"stages"`
	Warnings []warning         `json:"warnings"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-check DOCKERFILE")
		os.Exit(2)
	}
	file, err := os.Open(os.Args[1])
	if err != nil {
		fail(err)
	}
	defer file.Close()
	result, err := parser.Parse(file)
	if err != nil {
		fail(err)
	}
	out := report{Args: map[string]string{}, Stages: []stage{}, Warnings: []warning{}}
	lint := linter.New(&linter.Config{
		Warn: func(rule, _, _, message string, location []parser.Range) {
			line := 0
			if len(location) > 0 {
				line = location[0].Start.Line
			}
			out.Warnings = append(out.Warnings, warning{Rule: rule, Message: message, Line: line})
		},
	})
	for _, w := range result.Warnings {
		out.Warnings = append(out.Warnings, warning{Rule: "parser", Message: w.Short, Line: w.Location.Start.Line})
	}
	stages, metaArgs, err := instructions.Parse(result.AST, lint)
	if err != nil {
		fail(err)
	}
	for _, arg := range metaArgs {
		for _, kv := range arg.Args {
			value := ""
			if kv.Value != nil {
				value = *kv.Value
			}
			out.Args[kv.Key] = value
		}
	}
	for _, s := range stages {
		parsed := stage{
			Name: s.Name, Base: s.BaseName, CopyFrom: []string{}, Commands: []string{}, Runs: []string{},
			Env: map[string]string{}, Entrypoint: []string{},
		}
		for _, command := range s.Commands {
			parsed.Commands = append(parsed.Commands, command.Name())
			switch c := command.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					parsed.CopyFrom = append(parsed.CopyFrom, c.From)
				}
			case *instructions.UserCommand:
				parsed.User = c.User
			case *instructions.RunCommand:
				parsed.Runs = append(parsed.Runs, strings.Join(c.CmdLine, " "))
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					parsed.Env[kv.Key] = kv.Value
				}
			case *instructions.EntrypointCommand:
				parsed.Entrypoint = c.CmdLine
			}
		}
		out.Stages = append(out.Stages, parsed)
	}
	encoded, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(encoded))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dockerfile-check:", err)
	os.Exit(1)
}

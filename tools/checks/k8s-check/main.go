// k8s-check renders a Kustomize overlay with the kustomize library `kubectl apply -k` embeds
// and validates every resource as an API server would take it, without a cluster:
//
//   - built-in kinds (and the Prometheus Operator's) are decoded strictly into their Go API
//     types: an unknown or misspelt field, a wrong type or a duplicate key is an error;
//   - custom resources are validated against the openAPIV3Schema of their
//     CustomResourceDefinition (from --crds, generated from the operator's published API),
//     with the API server's own validator, and a field the schema does not know (one the
//     server would prune) is an error;
//   - a kind neither knows is an error.
//
// It prints the rendered overlay as YAML for the tests to read, or every problem found and
// exit status 1.
//
//	cd tools/checks && go run ./k8s-check --crds ../crds/target/crds ../../k8s/overlays/dev
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

type customKind struct {
	validator validation.SchemaValidator
	structure *structuralschema.Structural
}

func main() {
	crds := flag.String("crds", "", "a folder of CustomResourceDefinition YAML files")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: k8s-check [--crds DIR] KUSTOMIZATION_DIR")
		os.Exit(2)
	}
	custom, err := loadCRDs(*crds)
	if err != nil {
		fail(err)
	}
	if err := monitoringv1.AddToScheme(scheme.Scheme); err != nil {
		fail(err)
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})

	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), flag.Arg(0))
	if err != nil {
		fail(err)
	}
	rendered, err := resources.AsYaml()
	if err != nil {
		fail(err)
	}
	var problems []string
	for _, resource := range resources.Resources() {
		document, err := resource.AsYAML()
		if err != nil {
			fail(err)
		}
		gvk := schema.FromAPIVersionAndKind(resource.GetApiVersion(), resource.GetKind())
		name := fmt.Sprintf("%s %s", gvk.Kind, resource.GetName())
		if kind, ok := custom[gvk]; ok {
			for _, problem := range kind.check(document) {
				problems = append(problems, name+": "+problem)
			}
			continue
		}
		if !scheme.Scheme.Recognizes(gvk) {
			problems = append(problems, name+": no schema for "+gvk.String())
			continue
		}
		if _, _, err := strict.Decode(document, nil, nil); err != nil {
			problems = append(problems, name+": "+err.Error())
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, strings.Join(problems, "\n"))
		os.Exit(1)
	}
	os.Stdout.Write(rendered)
}

func (k customKind) check(document []byte) []string {
	var object map[string]interface{}
	if err := yaml.Unmarshal(document, &object); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, e := range validation.ValidateCustomResource(nil, object, k.validator) {
		problems = append(problems, e.Error())
	}
	pruned := runtime.DeepCopyJSON(object)
	for _, path := range pruning.PruneWithOptions(pruned, k.structure, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		problems = append(problems, "unknown field "+path)
	}
	return problems
}

func loadCRDs(folder string) (map[schema.GroupVersionKind]customKind, error) {
	kinds := map[schema.GroupVersionKind]customKind{}
	if folder == "" {
		return kinds, nil
	}
	files, err := filepath.Glob(filepath.Join(folder, "*.yaml"))
	if err != nil {
		return nil, err
	}
	for _, file := range files {
		content, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for _, document := range bytes.Split(content, []byte("\n---")) {
			if len(bytes.TrimSpace(document)) == 0 {
				continue
			}
			var crd apiextensionsv1.CustomResourceDefinition
			if err := yaml.UnmarshalStrict(document, &crd); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			for _, version := range crd.Spec.Versions {
				if version.Schema == nil || version.Schema.OpenAPIV3Schema == nil {
					return nil, fmt.Errorf("%s: version %s has no schema", file, version.Name)
				}
				var internal apiextensions.JSONSchemaProps
				if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(version.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
					return nil, err
				}
				validator, _, err := validation.NewSchemaValidator(&internal)
				if err != nil {
					return nil, err
				}
				structure, err := structuralschema.NewStructural(&internal)
				if err != nil {
					return nil, err
				}
				gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind}
				kinds[gvk] = customKind{validator: validator, structure: structure}
			}
		}
	}
	return kinds, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

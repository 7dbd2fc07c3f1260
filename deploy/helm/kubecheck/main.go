// Command kubecheck validates rendered Kubernetes manifests offline, where
// kubeconform cannot run (it downloads its JSON schemas). Each document is
// decoded strictly into the Go types of k8s.io/api, so a misspelt or
// misplaced field, or a value of the wrong type, is an error; names must be
// valid DNS names and a Deployment's selector must match its pod labels.
// KEDA's kinds and the Prometheus Operator's ServiceMonitor are checked
// against the subset of their fields this chart uses (their own Go modules
// are too heavy to pull in for that), and each KEDA trigger for the
// metadata its scaler requires.
//
//	helm template ... | go run . [-expect Kind/name ...]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kinds are the apiVersion/kind pairs the chart may render.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &serviceMonitor{} },
	"keda.sh/v1alpha1/ScaledObject":           func() any { return &scaledObject{} },
	"keda.sh/v1alpha1/TriggerAuthentication":  func() any { return &triggerAuthentication{} },
}

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) the
// chart writes.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart writes.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

func main() {
	var expect multiFlag
	flag.Var(&expect, "expect", "Kind/name that must be among the documents (repeatable)")
	flag.Parse()
	seen, err := check(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecheck:", err)
		os.Exit(1)
	}
	for _, want := range expect {
		if !seen[want] {
			fmt.Fprintf(os.Stderr, "kubecheck: expected %s among the rendered documents\n", want)
			os.Exit(1)
		}
	}
	fmt.Printf("kubecheck: %d documents valid\n", len(seen))
}

func check(r io.Reader) (map[string]bool, error) {
	seen := map[string]bool{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var problems []error
	for {
		raw, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		id, err := checkDoc(raw)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", id, err))
			continue
		}
		if seen[id] {
			problems = append(problems, fmt.Errorf("%s: rendered twice", id))
		}
		seen[id] = true
	}
	return seen, errors.Join(problems...)
}

func checkDoc(raw []byte) (string, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return "(unparsable document)", err
	}
	var head metav1.TypeMeta
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return "(document)", err
	}
	_ = json.Unmarshal(js, &meta)
	id := head.Kind + "/" + meta.Metadata.Name
	newObj, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return id, fmt.Errorf("unexpected apiVersion/kind %s/%s", head.APIVersion, head.Kind)
	}
	obj := newObj()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return id, fmt.Errorf("does not fit %s/%s: %w", head.APIVersion, head.Kind, err)
	}
	if msgs := validation.IsDNS1123Subdomain(meta.Metadata.Name); len(msgs) > 0 {
		return id, fmt.Errorf("name: %s", strings.Join(msgs, "; "))
	}
	return id, checkKind(obj)
}

// checkKind holds the few rules beyond the types that a chart gets wrong.
func checkKind(obj any) error {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector)
		if err != nil || sel.Empty() {
			return fmt.Errorf("spec.selector: empty or invalid (%v)", err)
		}
		if !sel.Matches(labels.Set(o.Spec.Template.Labels)) {
			return errors.New("spec.selector does not match the pod template's labels")
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			if c.Name == "" || c.Image == "" {
				return errors.New("a container without name or image")
			}
		}
	case *corev1.Service:
		if len(o.Spec.Selector) == 0 || len(o.Spec.Ports) == 0 {
			return errors.New("a Service without selector or ports")
		}
	case *scaledObject:
		if o.Spec.ScaleTargetRef.Name == "" || len(o.Spec.Triggers) == 0 {
			return errors.New("a ScaledObject without scaleTargetRef.name or triggers")
		}
		for _, t := range o.Spec.Triggers {
			if err := checkTrigger(t.Type, t.Metadata); err != nil {
				return err
			}
		}
	case *serviceMonitor:
		if len(o.Spec.Selector.MatchLabels) == 0 || len(o.Spec.Endpoints) == 0 {
			return errors.New("a ServiceMonitor without selector or endpoints")
		}
		for _, e := range o.Spec.Endpoints {
			if e.Port == "" {
				return errors.New("a ServiceMonitor endpoint without a port name")
			}
		}
	case *networkingv1.Ingress:
		for _, r := range o.Spec.Rules {
			if r.HTTP == nil || len(r.HTTP.Paths) == 0 {
				return errors.New("an Ingress rule without paths")
			}
			for _, p := range r.HTTP.Paths {
				if p.PathType == nil || p.Backend.Service == nil || p.Backend.Service.Name == "" {
					return fmt.Errorf("Ingress path %s: without pathType or a Service backend", p.Path)
				}
			}
		}
	case *networkingv1.NetworkPolicy:
		if len(o.Spec.PolicyTypes) == 0 {
			return errors.New("a NetworkPolicy without policyTypes")
		}
	}
	return nil
}

// triggerNeeds is the metadata each KEDA scaler the chart may use cannot do
// without (KEDA's scaler documentation); one of several alternatives is
// written a|b.
var triggerNeeds = map[string][]string{
	"prometheus":     {"serverAddress", "query", "threshold"},
	"redis":          {"address|host", "listName", "listLength"},
	"redis-sentinel": {"addresses|hosts", "sentinelMaster", "listName", "listLength"},
	"redis-cluster":  {"addresses|hosts", "listName", "listLength"},
}

func checkTrigger(kind string, metadata map[string]string) error {
	needs, ok := triggerNeeds[kind]
	if !ok {
		return fmt.Errorf("trigger type %q is none the chart should use", kind)
	}
	for _, need := range needs {
		found := false
		for _, key := range strings.Split(need, "|") {
			found = found || metadata[key] != ""
		}
		if !found {
			return fmt.Errorf("%s trigger without metadata.%s", kind, need)
		}
	}
	return nil
}

// stripComments drops whole-line comments, so a document of comments only
// counts as empty.
func stripComments(raw []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

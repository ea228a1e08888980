package main

import (
	"bufio"
	"debug/elf"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/maskgate/maskgate/handlers"
	"github.com/maskgate/maskgate/internal/testkit"
)

// repo is the repository's root, seen from this package.
const repo = "../.."

// TestDockerfileBuildsStaticBinaries runs the Dockerfile's own build commands (no
// Docker engine here) and checks what the image stages promise.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	raw, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	builds := 0
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := sc.Text()
		cmdline, ok := strings.CutPrefix(line, "RUN CGO_ENABLED=0 go build ")
		if !ok {
			continue
		}
		builds++
		cmd := exec.Command("sh", "-c", "CGO_ENABLED=0 go build "+strings.ReplaceAll(cmdline, "/out/", out+"/"))
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "VERSION=v9.8.7-test", "REVISION=0123abcd") // the image's build arguments
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, b)
		}
	}
	if builds != 2 {
		t.Fatalf("found %d build commands in the Dockerfile; want 2", builds)
	}
	for _, bin := range []string{"maskgate", "cxone-sim"} {
		f, err := elf.Open(filepath.Join(out, bin))
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked; the distroless static image cannot run it", bin)
			}
		}
		f.Close()
		if bin == "maskgate" {
			v, err := exec.Command(filepath.Join(out, bin), "version").Output()
			if err != nil || !strings.HasPrefix(string(v), "maskgate v9.8.7-test (revision 0123abcd, go") {
				t.Errorf("maskgate version of the image's binary = %q, %v; want the VERSION and REVISION it was built with", v, err)
			}
		}
		if !strings.Contains(string(raw), "COPY --from=build /out/"+bin+" /"+bin) || !strings.Contains(string(raw), `ENTRYPOINT ["/`+bin) {
			t.Errorf("the Dockerfile does not ship /%s as its entrypoint", bin)
		}
	}
	if strings.Count(string(raw), "USER nonroot:nonroot") != 2 || !strings.Contains(string(raw), `CMD ["/maskgate", "healthcheck"]`) {
		t.Error("the image stages must run as nonroot, and maskgate's must have its healthcheck")
	}
}

// TestDockerfileBuildsWithTheGoOfGoMod: the image's build stage must run the Go release
// go.mod's toolchain line names, to its minor version (the golang image's tag follows
// the patch releases). Those images set GOTOOLCHAIN=local, so they build with their
// own release whatever go.mod asks, and no Docker engine runs here to tell.
func TestDockerfileBuildsWithTheGoOfGoMod(t *testing.T) {
	read := func(name string) []byte {
		raw, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	image := regexp.MustCompile(`(?m)^FROM golang:(\d+\.\d+)-\S+ AS build$`).FindSubmatch(read("Dockerfile"))
	module := regexp.MustCompile(`(?m)^toolchain go(\d+\.\d+)(\.\d+)?$`).FindSubmatch(read("go.mod"))
	if image == nil || module == nil {
		t.Fatalf("found no build stage FROM golang:X.Y-… in the Dockerfile (%q) or no toolchain line in go.mod (%q)", image, module)
	}
	if string(image[1]) != string(module[1]) {
		t.Errorf("the Dockerfile builds with golang:%s, go.mod's toolchain is Go %s%s", image[1], module[1], module[2])
	}
}

// TestComposeFileIsWhatTheREADMEPromises parses docker-compose.yml: two maskgate
// replicas on 8081 and 8082 with healthchecks, Redis with the append-only file, the
// simulator on 8090 with the credentials maskgate uses, and a maskgate environment
// that passes the gateway's own configuration check.
func TestComposeFileIsWhatTheREADMEPromises(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repo, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       map[string]string `yaml:"build"`
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	redis, sim := compose.Services["redis"], compose.Services["cxone-sim"]
	if !strings.Contains(strings.Join(redis.Command, " "), "--appendonly yes") || len(redis.Healthcheck.Test) == 0 {
		t.Errorf("redis: command %v, healthcheck %v; want appendonly and a healthcheck", redis.Command, redis.Healthcheck.Test)
	}
	if sim.Build["target"] != "cxone-sim" || !slices.Contains(sim.Ports, "8090:8090") {
		t.Errorf("cxone-sim: build %v ports %v", sim.Build, sim.Ports)
	}
	for name, port := range map[string]string{"maskgate-1": "8081:8080", "maskgate-2": "8082:8080"} {
		m, ok := compose.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if m.Build["target"] != "maskgate" || !slices.Contains(m.Ports, port) || strings.Join(m.Healthcheck.Test, " ") != "CMD /maskgate healthcheck" {
			t.Errorf("%s: build %v ports %v healthcheck %v", name, m.Build, m.Ports, m.Healthcheck.Test)
		}
		if m.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy Redis", name)
		}
		if cfg, err := loadConfig(environment(m.Environment)); err != nil || len(cfg.Ignored) > 0 {
			t.Errorf("%s's environment fails the configuration check (%v) or sets what maskgate ignores: %v", name, err, cfg.Ignored)
		}
		for _, k := range []string{"CXONE_CLIENT_ID", "CXONE_CLIENT_SECRET", "CXONE_ACCESS_KEY_ID", "CXONE_ACCESS_KEY_SECRET"} {
			if m.Environment[k] != sim.Environment[k] {
				t.Errorf("%s and cxone-sim disagree on %s", name, k)
			}
		}
		if m.Environment["CXONE_AUTH_URL"] != "http://cxone-sim:8090/auth/token" || m.Environment["MASKGATE_REDIS_URL"] != "redis://redis:6379/0" {
			t.Errorf("%s does not point at the compose services", name)
		}
	}
	readme, _ := os.ReadFile(filepath.Join(repo, "README.md"))
	for _, want := range []string{"docker compose up", "http://localhost:8081/v1/agents/1001/mask", "/maskgate dev-token"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q", want)
		}
	}
}

// k8sObject is what TestKubernetesExample reads of deploy/kubernetes's objects.
type k8sObject struct {
	Kind string
	Spec struct {
		Replicas int
		Selector map[string]any // a Service's labels, or matchLabels
		Template struct {
			Metadata struct{ Labels map[string]any }
			Spec     struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				TopologySpreadConstraints     []struct {
					TopologyKey       string `yaml:"topologyKey"`
					WhenUnsatisfiable string `yaml:"whenUnsatisfiable"`
					LabelSelector     struct {
						MatchLabels map[string]any `yaml:"matchLabels"`
					} `yaml:"labelSelector"`
				} `yaml:"topologySpreadConstraints"`
				AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
				SecurityContext              struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []struct {
					Ports []struct {
						Name          string
						ContainerPort int `yaml:"containerPort"`
					}
					Env []struct {
						Name, Value string
						ValueFrom   struct {
							SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					}
					Resources struct {
						Limits map[string]string
					}
					ReadinessProbe  k8sProbe `yaml:"readinessProbe"`
					LivenessProbe   k8sProbe `yaml:"livenessProbe"`
					SecurityContext struct {
						ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
					} `yaml:"securityContext"`
					VolumeMounts []struct {
						Name      string
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				}
				Volumes []struct {
					Name   string
					Secret struct {
						SecretName string `yaml:"secretName"`
					}
				}
			}
		}
		Ports []struct {
			TargetPort string `yaml:"targetPort"`
		}
		MinAvailable int `yaml:"minAvailable"`
	}
}

// mebibytes reads a size written in mebibytes with unit ("200MiB" for Go's GOMEMLIMIT,
// "256Mi" for a Kubernetes quantity), the form the example uses.
func mebibytes(t *testing.T, size, unit string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(size, unit))
	if err != nil || !strings.HasSuffix(size, unit) {
		t.Fatalf("%q is not a whole number of %s", size, unit)
	}
	return n
}

type k8sProbe struct {
	HTTPGet        struct{ Path, Port, Scheme string } `yaml:"httpGet"`
	TimeoutSeconds int                                 `yaml:"timeoutSeconds"`
}

// TestKubernetesExample checks deploy/kubernetes/maskgate.yaml against maskgate itself:
// it sets no variable maskgate does not read, and its environment passes the
// configuration check once the Secrets it mounts are files here (the TLS pair a
// certificate from the test CA), the grace period outlasts the shutdown delay and the
// drain, the probes ask the listener's port in its scheme (the readiness probe leaving
// CXone's check out, README, and waiting longer than /readyz's checks may take), the
// Service and the disruption budget select what the Deployment runs, GOMEMLIMIT is
// under the memory limit, and the container runs as nonroot on a read-only filesystem.
func TestKubernetesExample(t *testing.T) {
	f, err := os.Open(filepath.Join(repo, "deploy/kubernetes/maskgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objects := map[string]k8sObject{}
	for dec := yaml.NewDecoder(f); ; {
		var o k8sObject
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		objects[o.Kind] = o
	}
	deploy, svc, pdb := objects["Deployment"], objects["Service"], objects["PodDisruptionBudget"]
	pod := deploy.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers; want maskgate's one", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The mounted Secrets as files here: the TLS Secret's keys a certificate pair, the
	// other's made-up values.
	secretOf := map[string]string{}
	for _, v := range pod.Volumes {
		secretOf[v.Name] = v.Secret.SecretName
	}
	ca := newTestCA(t)
	here := map[string]string{} // mount path -> a folder here
	for _, m := range c.VolumeMounts {
		dir := t.TempDir()
		here[m.MountPath] = dir
		if secretOf[m.Name] == "maskgate-tls" {
			ca.issue(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), 2, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		}
	}
	e := map[string]string{}
	for _, v := range c.Env {
		value := v.Value
		if ref := v.ValueFrom.SecretKeyRef; ref.Key != "" {
			t.Errorf("%s comes from Secret %s key %s into the environment; secrets go in files (_FILE)", v.Name, ref.Name, ref.Key)
		}
		for mount, dir := range here {
			if rest, ok := strings.CutPrefix(value, mount+"/"); ok {
				value = filepath.Join(dir, rest)
				if _, err := os.Stat(value); os.IsNotExist(err) {
					made := "made-up-" + rest
					if rest == "redis-url" {
						made = testkit.RedisURL()
					}
					if err := os.WriteFile(value, []byte(made+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		e[v.Name] = value
	}
	asked := map[string]bool{"GOMEMLIMIT": true, "GOGC": true} // the Go runtime's
	cfg, err := readConfig(func(name string) string { asked[name] = true; return e[name] })
	if err != nil {
		t.Fatalf("the example's environment fails the configuration check: %v", err)
	}
	for name := range e {
		if !asked[name] {
			t.Errorf("the example sets %s, which maskgate does not read", name)
		}
	}

	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= cfg.ShutdownDelay+cfg.DrainTimeout {
		t.Errorf("terminationGracePeriodSeconds %s; want more than the delay and the drain, %s", grace, cfg.ShutdownDelay+cfg.DrainTimeout)
	}
	_, port, _ := net.SplitHostPort(cfg.Addr)
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Fatalf("container ports %v; want MASKGATE_ADDR's %s", c.Ports, port)
	}
	scheme := map[bool]string{false: "HTTP", true: "HTTPS"}[cfg.TLS.enabled()]
	for path, p := range map[string]k8sProbe{"/readyz?exclude=cxone": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if p.HTTPGet.Path != path || p.HTTPGet.Port != c.Ports[0].Name || p.HTTPGet.Scheme != scheme {
			t.Errorf("probe %+v; want %s on port %s in %s", p.HTTPGet, path, c.Ports[0].Name, scheme)
		}
	}
	if wait := time.Duration(c.ReadinessProbe.TimeoutSeconds) * time.Second; wait <= handlers.ReadyTimeout {
		t.Errorf("readiness probe timeout %s; want more than /readyz's own bound on its checks, %s", wait, handlers.ReadyTimeout)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != c.Ports[0].Name {
		t.Errorf("the Service's ports %+v; want the target %s", svc.Spec.Ports, c.Ports[0].Name)
	}
	pods := deploy.Spec.Template.Metadata.Labels
	matchLabels, _ := deploy.Spec.Selector["matchLabels"].(map[string]any)
	budget, _ := pdb.Spec.Selector["matchLabels"].(map[string]any)
	if len(pods) == 0 || !maps.Equal(matchLabels, pods) || !maps.Equal(svc.Spec.Selector, pods) || !maps.Equal(budget, pods) {
		t.Errorf("the pods are labelled %v; the Deployment selects %v, the Service %v, the disruption budget %v", pods, matchLabels, svc.Spec.Selector, budget)
	}
	spread := map[string]string{} // topology key -> when unsatisfiable
	for _, c := range pod.TopologySpreadConstraints {
		spread[c.TopologyKey] = c.WhenUnsatisfiable
		if !maps.Equal(c.LabelSelector.MatchLabels, pods) {
			t.Errorf("the spread over %s counts pods labelled %v; the pods are labelled %v", c.TopologyKey, c.LabelSelector.MatchLabels, pods)
		}
	}
	if spread["kubernetes.io/hostname"] != "DoNotSchedule" || spread["topology.kubernetes.io/zone"] == "" {
		t.Errorf("the replicas are spread %v; want evenly over nodes, strictly, and over zones", spread)
	}
	if pdb.Spec.MinAvailable < 1 || pdb.Spec.MinAvailable >= deploy.Spec.Replicas {
		t.Errorf("the disruption budget keeps %d of %d replicas; want at least one and fewer than all", pdb.Spec.MinAvailable, deploy.Spec.Replicas)
	}
	if soft, hard := mebibytes(t, e["GOMEMLIMIT"], "MiB"), mebibytes(t, c.Resources.Limits["memory"], "Mi"); soft >= hard {
		t.Errorf("GOMEMLIMIT %s is not under the memory limit %s", e["GOMEMLIMIT"], c.Resources.Limits["memory"])
	}
	if !pod.SecurityContext.RunAsNonRoot || !c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the pod must run as nonroot on a read-only root filesystem")
	}
	if a := pod.AutomountServiceAccountToken; a == nil || *a {
		t.Error("the pod must not mount a service account token: maskgate never calls the Kubernetes API")
	}
}

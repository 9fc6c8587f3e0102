package plait_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeExampleBuilds keeps the README's "Write your own application"
// honest: its program must compile against the current API.
func TestReadmeExampleBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Write your own application")
	if !ok {
		t.Fatal("README has no \"Write your own application\" section")
	}
	_, code, ok := strings.Cut(section, "```go\n")
	if !ok {
		t.Fatal("the section has no Go code block")
	}
	code, _, _ = strings.Cut(code, "```")
	if !strings.Contains(code, "func main()") {
		t.Fatal("the first Go block is not a complete program")
	}
	// The program is laid over the checkout as a package of its own (a
	// directory starting with _ is invisible to ./...), so that it builds
	// against this very module without writing into the source tree.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	main := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(main, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(wd, "_readme_example", "main.go"): main}})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-overlay", overlayFile, "-o", os.DevNull, "./_readme_example").CombinedOutput()
	if err != nil {
		t.Fatalf("the README example does not build:\n%s", out)
	}
}

package plait_test

import (
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
	// A directory starting with _ is invisible to ./... but inside the
	// module, so the example builds against this very checkout.
	dir, err := os.MkdirTemp(".", "_readme")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", os.DevNull, "./"+filepath.Base(dir)).CombinedOutput()
	if err != nil {
		t.Fatalf("the README example does not build:\n%s", out)
	}
}

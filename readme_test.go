package plait_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeExampleBuilds keeps the README's "Write your own application"
// honest: its program must compile against the current API, and so must
// the continuation that adds a view and its reactor, a later Go block with
// a main of its own, which is built as the program with that block in
// place of the program's main.
func TestReadmeExampleBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Write your own application")
	if !ok {
		t.Fatal("README has no \"Write your own application\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	blocks := goBlocks(section)
	if len(blocks) == 0 {
		t.Fatal("the section has no Go code block")
	}
	program := blocks[0]
	base, _, ok := strings.Cut(program, "\nfunc main()")
	if !ok {
		t.Fatal("the first Go block is not a complete program")
	}
	programs := []struct{ name, code string }{{"program", program}}
	for _, b := range blocks[1:] {
		if strings.Contains(b, "\nfunc main()") {
			programs = append(programs, struct{ name, code string }{fmt.Sprintf("continuation%d", len(programs)), base + "\n" + b})
		}
	}
	if len(programs) < 2 {
		t.Fatal("the section has no continuation of its program (a later Go block with a main): its view and reactor")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			// The program is laid over the checkout as a package of its
			// own (a directory starting with _ is invisible to ./...), so
			// that it builds against this very module without writing
			// into the source tree.
			tmp := t.TempDir()
			main := filepath.Join(tmp, "main.go")
			if err := os.WriteFile(main, []byte(p.code), 0o644); err != nil {
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
				t.Fatalf("the README's %s does not build:\n%s\n%s", p.name, out, p.code)
			}
		})
	}
}

// goBlocks returns the code of the ```go blocks of markdown, in order.
func goBlocks(markdown string) []string {
	var blocks []string
	for {
		_, rest, ok := strings.Cut(markdown, "```go\n")
		if !ok {
			return blocks
		}
		code, after, _ := strings.Cut(rest, "```")
		blocks = append(blocks, code)
		markdown = after
	}
}

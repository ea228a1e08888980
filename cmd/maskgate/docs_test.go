package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	heading  = regexp.MustCompile(`(?m)^#+ (.+)$`)
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	notInIDs = regexp.MustCompile(`[^\w\- ]`)
)

// headingID is the id GitHub gives a Markdown heading, which a link names after #.
func headingID(title string) string {
	return strings.ReplaceAll(notInIDs.ReplaceAllString(strings.ToLower(strings.TrimSpace(title)), ""), " ", "-")
}

// The documents' links lead somewhere: a link to a section names one of the
// document's headings, and a link to a file of the repository names one that exists.
// A heading renamed or a file moved would otherwise leave a reader at the top of a
// 1,200-line page, or at GitHub's 404.
func TestDocumentLinksResolve(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(repo, "README.md"))
	links := 0
	for _, doc := range docs {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, m := range heading.FindAllStringSubmatch(string(text), -1) {
			ids[headingID(m[1])] = true
		}
		name, _ := filepath.Rel(repo, doc)
		for _, m := range mdLink.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			switch path, section, _ := strings.Cut(target, "#"); {
			case strings.Contains(target, "://"), strings.HasPrefix(target, "../shared/"):
				continue // a web page, or the contract beside the repository
			case path == "":
				if !ids[section] {
					t.Errorf("%s links to #%s, which is none of its headings", name, section)
				}
			default:
				if _, err := os.Stat(filepath.Join(filepath.Dir(doc), path)); err != nil {
					t.Errorf("%s links to %s: %v", name, target, err)
				}
			}
			links++
		}
	}
	if links < 30 {
		t.Fatalf("found only %d links: the pattern is broken", links)
	}
}

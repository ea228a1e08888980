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
	links := 0
	for doc, text := range documents(t) {
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

// The documents' prose is wrapped at 90 characters, so that it reads in an editor and a
// diff shows the words that changed rather than a paragraph's one long line. A line
// may run over only where it cannot break: a code span (a URL, a command, a JSON
// shape) that reaches past the 90th character. Tables and code blocks are left as
// they are.
func TestDocumentProseIsWrapped(t *testing.T) {
	const width = 90
	lines := 0
	for doc, text := range documents(t) {
		name, _ := filepath.Rel(repo, doc)
		fenced, inCode := false, false // inCode: a code span that goes on from a line before
		for i, line := range strings.Split(string(text), "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(trimmed, "```"):
				fenced = !fenced
				continue
			case fenced || strings.HasPrefix(trimmed, "|"):
				continue
			case trimmed == "":
				inCode = false
				continue
			}
			lines++
			column, breakable := 0, false
			content := strings.TrimLeft(line, " ")
			indent := len(line) - len(content)
			if item := listItem.FindString(content); item != "" {
				indent += len(item)
			}
			for _, c := range line {
				column++
				switch {
				case c == '`':
					inCode = !inCode
				case c == ' ' && !inCode && column > indent && column <= width+1:
					breakable = true
				}
			}
			if column > width && breakable {
				t.Errorf("%s:%d is %d characters long: break it at a space within its first %d", name, i+1, column, width)
			}
		}
	}
	if lines < 1000 {
		t.Fatalf("read only %d lines of prose: the documents were not found", lines)
	}
}

var listItem = regexp.MustCompile(`^([-*]|\d+\.) +`)

// documents reads README.md and docs/*.md, by path.
func documents(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][]byte{}
	for _, path := range append(paths, filepath.Join(repo, "README.md")) {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		docs[path] = text
	}
	return docs
}

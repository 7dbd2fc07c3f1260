//go:build linux

package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// PrintChildLogs summarises what the children logging in dir wrote (its
// *.log files), under title: the harness programs run the product at
// LOG_LEVEL=warn, so every line is something to look at. Lines with the same
// level and message are counted together, with one example; a
// redis-server's (a log named redis*) only its warnings.
func PrintChildLogs(title, dir string) {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(paths)
	fmt.Println(title)
	quiet := true
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".log")
		groups, order, total := summariseLog(p, strings.HasPrefix(name, "redis"))
		if total == 0 {
			continue
		}
		quiet = false
		fmt.Printf("  %s: %d line(s)\n", name, total)
		for i, k := range order {
			if i == 8 {
				fmt.Printf("    … %d more kinds\n", len(order)-8)
				break
			}
			g := groups[k]
			fmt.Printf("    %6d × %s\n", g.n, Clip(g.example, 400))
		}
	}
	if quiet {
		fmt.Println("  nothing")
	}
}

type logGroup struct {
	n       int
	example string
}

func summariseLog(path string, redisLog bool) (map[string]*logGroup, []string, int) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0
	}
	defer f.Close()
	groups := map[string]*logGroup{}
	var order []string
	total := 0
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if redisLog && (!strings.Contains(line, " # ") || redisBanner(line)) {
			continue // notices, and the start-up banner's warning-level lines
		}
		key, example := line, line
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil {
			level, _ := entry["level"].(string)
			msg, _ := entry["msg"].(string)
			key = level + " " + msg
			example = level + ": " + msg
			if e, ok := entry["error"].(string); ok {
				example += " (error: " + e + ")"
			}
		} else if i := strings.Index(line, " # "); redisLog && i >= 0 {
			key = line[i:]
		}
		total++
		g, ok := groups[key]
		if !ok {
			g = &logGroup{example: example}
			groups[key] = g
			order = append(order, key)
		}
		g.n++
	}
	sort.SliceStable(order, func(i, j int) bool { return groups[order[i]].n > groups[order[j]].n })
	return groups, order, total
}

// redisBanner reports the warning-level lines every redis-server start and
// requested stop writes, which say nothing about the run.
func redisBanner(line string) bool {
	for _, s := range []string{"oO0OoO0OoO0Oo", "Redis version=", "Configuration loaded", "Server initialized",
		"User requested shutdown", "ready to exit"} {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// An example job module in Go: report.word_count counts the words of the
// texts given as args; it asks to be retried when given none.
package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

type input struct {
	Args    []string       `json:"args"`
	Kwargs  map[string]any `json:"kwargs"`
	Context struct {
		Attempt int `json:"attempt"`
	} `json:"context"`
}

//go:wasmexport word_count
func wordCount() int32 {
	var in input
	if err := json.Unmarshal(Input(), &in); err != nil {
		SetErrorString("args must be a list of texts: " + err.Error())
		return 1
	}
	if len(in.Args) == 0 {
		Retry(10, false, "nothing to count yet")
		return 0
	}
	counts := map[string]int{}
	total := 0
	for i, t := range in.Args {
		Progress(int32(i*100/len(in.Args)), fmt.Sprintf("text %d of %d", i+1, len(in.Args)))
		for _, w := range strings.Fields(strings.ToLower(t)) {
			counts[w]++
			total++
		}
	}
	Progress(100, "counted")
	out, _ := json.Marshal(map[string]any{"words": total, "distinct": len(counts), "counts": counts})
	Output(out)
	return 0
}

func main() {}

// echo returns its input unchanged: the baseline of a big module's cost.
//
//go:wasmexport echo
func echo() int32 {
	Output(Input())
	return 0
}

//go:build wasip1

// Command wordcount computes over data it does not trust the box with: it
// fetches a UnixFS file by CID through the ipfs capability (the stick
// verifies every block) and returns counts.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/teastick/teastick/runtime/actor"
)

// Result is what "count" returns.
type Result struct {
	CID   string `json:"cid"`
	Bytes int    `json:"bytes"`
	Lines int    `json:"lines"`
	Words int    `json:"words"`
	Top   []Word `json:"top"`
}

// Word is one of the most frequent words.
type Word struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

// Count counts data; exported for the native test of the same code.
func Count(data []byte) Result {
	r := Result{Bytes: len(data), Lines: bytes.Count(data, []byte{'\n'})}
	freq := map[string]int{}
	for _, w := range bytes.Fields(data) {
		r.Words++
		freq[strings.ToLower(string(w))]++
	}
	for w, n := range freq {
		r.Top = append(r.Top, Word{w, n})
	}
	sort.Slice(r.Top, func(i, j int) bool {
		if r.Top[i].Count != r.Top[j].Count {
			return r.Top[i].Count > r.Top[j].Count
		}
		return r.Top[i].Word < r.Top[j].Word
	})
	if len(r.Top) > 5 {
		r.Top = r.Top[:5]
	}
	return r
}

func init() {
	actor.Handle("count", func(p []byte) ([]byte, error) {
		cid := strings.TrimSpace(string(p))
		if cid == "" {
			return nil, errors.New("wordcount: payload must be a CID")
		}
		data, err := actor.IPFSCat(cid)
		if err != nil {
			return nil, err
		}
		r := Count(data)
		r.CID = cid
		return json.Marshal(r)
	})
}

func main() {}

package api

import (
	"bytes"
	"math"
	"sort"
	"strconv"
	"strings"
)

// family is one metric family as the text exposition format writes it:
// a HELP line, a TYPE line, then its samples.
type family struct {
	name, typ, help string
	samples         []sample
}

// sample is one line: the family's name plus suffix, labels, a value.
type sample struct {
	suffix string // _bucket, _sum, _count for histograms
	labels []label
	value  float64
}

type label struct{ name, value string }

// labelled is a family with one label, a series per key, keys sorted.
func labelled(name, typ, help, labelName string, values map[string]float64) family {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f := family{name: name, typ: typ, help: help}
	for _, k := range keys {
		f.samples = append(f.samples, sample{labels: []label{{labelName, k}}, value: values[k]})
	}
	return f
}

// single is a family of one series without labels.
func single(name, typ, help string, v float64) family {
	return family{name: name, typ: typ, help: help, samples: []sample{{value: v}}}
}

// family writes h as a histogram: cumulative buckets, +Inf, sum, count.
func (h *histogram) family(name, help string) family {
	f := family{name: name, typ: "histogram", help: help}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		f.samples = append(f.samples, sample{suffix: "_bucket", labels: []label{{"le", formatFloat(b)}}, value: float64(cum)})
	}
	f.samples = append(f.samples,
		sample{suffix: "_bucket", labels: []label{{"le", "+Inf"}}, value: float64(h.count)},
		sample{suffix: "_sum", value: h.sum},
		sample{suffix: "_count", value: float64(h.count)},
	)
	return f
}

func (f family) write(b *bytes.Buffer) {
	b.WriteString("# HELP ")
	b.WriteString(f.name)
	b.WriteByte(' ')
	b.WriteString(helpEscaper.Replace(f.help))
	b.WriteString("\n# TYPE ")
	b.WriteString(f.name)
	b.WriteByte(' ')
	b.WriteString(f.typ)
	b.WriteByte('\n')
	for _, s := range f.samples {
		b.WriteString(f.name)
		b.WriteString(s.suffix)
		if len(s.labels) > 0 {
			b.WriteByte('{')
			for i, l := range s.labels {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(l.name)
				b.WriteString(`="`)
				b.WriteString(labelEscaper.Replace(l.value))
				b.WriteByte('"')
			}
			b.WriteByte('}')
		}
		b.WriteByte(' ')
		b.WriteString(formatFloat(s.value))
		b.WriteByte('\n')
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// formatFloat writes v as the text format wants: shortest form, +Inf,
// -Inf, NaN.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

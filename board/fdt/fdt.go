// Package fdt reads a flattened devicetree (DTB), the board description
// QEMU hands to bare-metal guests, so that the stick finds devices the board
// describes instead of touching addresses where nothing may answer.
//
// The format is the Devicetree Specification v0.4, chapter 5 ("Flattened
// Devicetree (DTB) Format"). The blob is untrusted input: every offset and
// length is checked, and the parser never panics (FuzzParse).
package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Magic is the first word of a DTB (5.2, big endian).
const Magic = 0xd00dfeed

// Structure block tokens (5.4.1).
const (
	tokenBeginNode = 1
	tokenEndNode   = 2
	tokenProp      = 3
	tokenNop       = 4
	tokenEnd       = 9
)

// Limits on what is parsed.
const (
	MaxSize  = 1 << 20
	MaxDepth = 16
	MaxNodes = 4096
)

// Errors of malformed blobs.
var (
	ErrMagic     = errors.New("fdt: not a devicetree blob")
	ErrMalformed = errors.New("fdt: malformed devicetree blob")
)

// Node is one devicetree node.
type Node struct {
	// Path is the full path, "/" for the root.
	Path  string
	Props map[string][]byte
	// AddressCells and SizeCells are the parent's #address-cells and
	// #size-cells, which define this node's reg property.
	AddressCells, SizeCells uint32
	// Parent is nil for the root.
	Parent *Node
}

// Name returns the node's name, unit address included.
func (n *Node) Name() string {
	if n.Path == "/" {
		return "/"
	}
	return n.Path[strings.LastIndexByte(n.Path, '/')+1:]
}

// Compatible reports whether the node's compatible list names c.
func (n *Node) Compatible(c string) bool {
	for _, s := range strings.Split(strings.TrimRight(string(n.Props["compatible"]), "\x00"), "\x00") {
		if s == c {
			return true
		}
	}
	return false
}

// Region is one (address, size) pair of a reg property.
type Region struct {
	Addr, Size uint64
}

// Reg decodes the node's reg property.
func (n *Node) Reg() ([]Region, error) {
	reg, ok := n.Props["reg"]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no reg", ErrMalformed, n.Path)
	}
	ac, sc := n.AddressCells, n.SizeCells
	if ac > 2 || sc > 2 || ac == 0 {
		return nil, fmt.Errorf("%w: %s: unsupported #address-cells %d / #size-cells %d", ErrMalformed, n.Path, ac, sc)
	}
	entry := 4 * int(ac+sc)
	if len(reg)%entry != 0 {
		return nil, fmt.Errorf("%w: %s: reg of %d bytes", ErrMalformed, n.Path, len(reg))
	}
	var out []Region
	for off := 0; off < len(reg); off += entry {
		out = append(out, Region{
			Addr: cells(reg[off:], ac),
			Size: cells(reg[off+4*int(ac):], sc),
		})
	}
	return out, nil
}

// PhysRegions decodes reg and translates each address through the
// ancestors' ranges properties (2.3.8) into a CPU physical address. An
// ancestor without ranges, or whose ranges do not cover the address, makes
// the node unreachable: an error.
func (n *Node) PhysRegions() ([]Region, error) {
	regs, err := n.Reg()
	if err != nil {
		return nil, err
	}
	for i := range regs {
		addr := regs[i].Addr
		for child := n; child.Parent != nil && child.Parent.Parent != nil; child = child.Parent {
			bus := child.Parent
			addr, err = bus.translate(addr, child.AddressCells, child.SizeCells)
			if err != nil {
				return nil, err
			}
		}
		regs[i].Addr = addr
	}
	return regs, nil
}

// translate maps a child bus address through the bus node's ranges.
func (bus *Node) translate(addr uint64, cac, csc uint32) (uint64, error) {
	ranges, ok := bus.Props["ranges"]
	if !ok {
		return 0, fmt.Errorf("%w: %s has no ranges: children unreachable", ErrMalformed, bus.Path)
	}
	if len(ranges) == 0 {
		return addr, nil // identity
	}
	pac := bus.AddressCells
	if cac > 2 || pac > 2 || csc > 2 {
		return 0, fmt.Errorf("%w: %s: unsupported cells in ranges", ErrMalformed, bus.Path)
	}
	entry := 4 * int(cac+pac+csc)
	if entry == 0 || len(ranges)%entry != 0 {
		return 0, fmt.Errorf("%w: %s: ranges of %d bytes", ErrMalformed, bus.Path, len(ranges))
	}
	for off := 0; off < len(ranges); off += entry {
		c := cells(ranges[off:], cac)
		p := cells(ranges[off+4*int(cac):], pac)
		size := cells(ranges[off+4*int(cac+pac):], csc)
		if addr >= c && addr-c < size {
			return p + (addr - c), nil
		}
	}
	return 0, fmt.Errorf("%w: %s: address %#x outside its ranges", ErrMalformed, bus.Path, addr)
}

func cells(b []byte, n uint32) (v uint64) {
	for i := uint32(0); i < n; i++ {
		v = v<<32 | uint64(binary.BigEndian.Uint32(b[4*i:]))
	}
	return v
}

// Tree is a parsed blob: its nodes in document order.
type Tree struct {
	Nodes []*Node
}

// Find returns the nodes compatible with c.
func (t *Tree) Find(c string) []*Node {
	var out []*Node
	for _, n := range t.Nodes {
		if n.Compatible(c) {
			out = append(out, n)
		}
	}
	return out
}

// Size returns the total size a blob at the start of b declares, so that a
// caller reading a memory window knows how much to take.
func Size(b []byte) (int, error) {
	if len(b) < 40 || binary.BigEndian.Uint32(b) != Magic {
		return 0, ErrMagic
	}
	n := binary.BigEndian.Uint32(b[4:])
	if n < 40 || n > MaxSize {
		return 0, fmt.Errorf("%w: total size %d", ErrMalformed, n)
	}
	return int(n), nil
}

// Parse reads the blob b.
func Parse(b []byte) (*Tree, error) {
	size, err := Size(b)
	if err != nil {
		return nil, err
	}
	if size > len(b) {
		return nil, fmt.Errorf("%w: total size %d, %d bytes present", ErrMalformed, size, len(b))
	}
	b = b[:size]
	hdr := func(i int) uint32 { return binary.BigEndian.Uint32(b[4*i:]) }
	offStruct, offStrings := hdr(2), hdr(3)
	version, lastComp := hdr(5), hdr(6)
	sizeStrings, sizeStruct := hdr(8), hdr(9)
	if version < 17 || lastComp > 17 {
		return nil, fmt.Errorf("%w: version %d (last compatible %d), need 17", ErrMalformed, version, lastComp)
	}
	if uint64(offStruct)+uint64(sizeStruct) > uint64(size) || uint64(offStrings)+uint64(sizeStrings) > uint64(size) {
		return nil, fmt.Errorf("%w: blocks beyond the blob", ErrMalformed)
	}
	p := parser{s: b[offStruct : offStruct+sizeStruct], strs: b[offStrings : offStrings+sizeStrings]}
	return p.parse()
}

type parser struct {
	s    []byte
	off  int
	strs []byte
}

func (p *parser) u32() (uint32, error) {
	if p.off+4 > len(p.s) {
		return 0, fmt.Errorf("%w: structure block truncated", ErrMalformed)
	}
	v := binary.BigEndian.Uint32(p.s[p.off:])
	p.off += 4
	return v, nil
}

func (p *parser) align() { p.off = (p.off + 3) &^ 3 }

func (p *parser) cstring(b []byte, at int) (string, error) {
	if at < 0 || at >= len(b) {
		return "", fmt.Errorf("%w: string offset %d", ErrMalformed, at)
	}
	end := bytes.IndexByte(b[at:], 0)
	if end < 0 {
		return "", fmt.Errorf("%w: unterminated string", ErrMalformed)
	}
	return string(b[at : at+end]), nil
}

func (p *parser) parse() (*Tree, error) {
	t := &Tree{}
	type frame struct {
		node   *Node
		ac, sc uint32 // cells for this node's children
	}
	var stack []frame
	for {
		tok, err := p.u32()
		if err != nil {
			return nil, err
		}
		switch tok {
		case tokenBeginNode:
			name, err := p.cstring(p.s, p.off)
			if err != nil {
				return nil, err
			}
			p.off += len(name) + 1
			p.align()
			if len(stack) == MaxDepth || len(t.Nodes) == MaxNodes {
				return nil, fmt.Errorf("%w: too deep or too many nodes", ErrMalformed)
			}
			n := &Node{Props: map[string][]byte{}, AddressCells: 2, SizeCells: 1}
			switch {
			case len(stack) == 0:
				if name != "" {
					return nil, fmt.Errorf("%w: root node named %q", ErrMalformed, name)
				}
				n.Path = "/"
			case stack[len(stack)-1].node.Path == "/":
				n.Path = "/" + name
			default:
				n.Path = stack[len(stack)-1].node.Path + "/" + name
			}
			if len(stack) > 0 {
				n.AddressCells, n.SizeCells = stack[len(stack)-1].ac, stack[len(stack)-1].sc
				n.Parent = stack[len(stack)-1].node
			}
			// defaults for children (2.3.5): 2 address cells, 1 size cell
			stack = append(stack, frame{node: n, ac: 2, sc: 1})
			t.Nodes = append(t.Nodes, n)
		case tokenEndNode:
			if len(stack) == 0 {
				return nil, fmt.Errorf("%w: unbalanced end of node", ErrMalformed)
			}
			stack = stack[:len(stack)-1]
		case tokenProp:
			if len(stack) == 0 {
				return nil, fmt.Errorf("%w: property outside a node", ErrMalformed)
			}
			l, err := p.u32()
			if err != nil {
				return nil, err
			}
			nameOff, err := p.u32()
			if err != nil {
				return nil, err
			}
			if uint64(p.off)+uint64(l) > uint64(len(p.s)) {
				return nil, fmt.Errorf("%w: property value beyond the block", ErrMalformed)
			}
			val := p.s[p.off : p.off+int(l)]
			p.off += int(l)
			p.align()
			name, err := p.cstring(p.strs, int(nameOff))
			if err != nil {
				return nil, err
			}
			top := &stack[len(stack)-1]
			top.node.Props[name] = val
			if len(val) == 4 && name == "#address-cells" {
				top.ac = binary.BigEndian.Uint32(val)
			}
			if len(val) == 4 && name == "#size-cells" {
				top.sc = binary.BigEndian.Uint32(val)
			}
		case tokenNop:
		case tokenEnd:
			if len(stack) != 0 {
				return nil, fmt.Errorf("%w: blob ends inside a node", ErrMalformed)
			}
			if len(t.Nodes) == 0 {
				return nil, fmt.Errorf("%w: no root node", ErrMalformed)
			}
			return t, nil
		default:
			return nil, fmt.Errorf("%w: unknown token %#x at %d", ErrMalformed, tok, p.off-4)
		}
	}
}

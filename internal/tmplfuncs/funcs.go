package tmplfuncs

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// denied are Sprig functions no template of keyway's may call.
var denied = []string{
	"env", "expandenv", "getHostByName",
	"until", "untilStep", "seq", "repeat",
	"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey",
	"genSignedCert", "genSignedCertWithKey", "buildCustomCert", "derivePassword",
	"fail",
}

// passThrough functions return a scalar or a part of their arguments: they cost a step
// and nothing else.
var passThrough = map[string]bool{
	"get": true, "hasKey": true, "first": true, "mustFirst": true, "last": true, "mustLast": true,
	"default": true, "empty": true, "coalesce": true, "ternary": true, "all": true, "any": true,
	"typeOf": true, "typeIs": true, "typeIsLike": true, "kindOf": true, "kindIs": true,
	"deepEqual": true, "contains": true, "hasPrefix": true, "hasSuffix": true,
	"regexMatch": true, "mustRegexMatch": true, "has": true, "mustHas": true, "dig": true,
	"int": true, "int64": true, "float64": true, "atoi": true, "toDecimal": true,
	"add1": true, "add": true, "sub": true, "div": true, "mod": true, "mul": true, "randInt": true,
	"add1f": true, "addf": true, "subf": true, "divf": true, "mulf": true, "biggest": true,
	"max": true, "min": true, "maxf": true, "minf": true, "ceil": true, "floor": true, "round": true,
	"gt": true, "gte": true, "lt": true, "lte": true, "semverCompare": true, "now": true,
}

// mutators change their first argument in place; they are charged for what they add and
// may not make a value that contains itself (fmt would recurse until the stack is gone).
var mutators = map[string]bool{
	"set": true, "unset": true, "merge": true, "mergeOverwrite": true, "mustMerge": true, "mustMergeOverwrite": true,
}

// expansion is how many times the size of its arguments a function's result can be, for
// those that can exceed twice; extras (below) cover sizes the arguments choose.
var expansion = map[string]int64{
	"quote": 4, "print": 4, "printf": 4, "println": 4, "cat": 4, "toString": 4, "toStrings": 4,
	"sortAlpha": 4, "html": 6, "js": 6, "urlquery": 3, "fromJson": 24, "mustFromJson": 24,
}

// baseFuncs are the functions a template may call, unwrapped: Sprig's generic ones less
// the denied, and text/template's builtins that build strings (a FuncMap entry overrides
// a builtin). Templates parse against them; Parse then binds the ones a template uses to
// its budget (wrap), so a template pays for the functions it calls, not for all 200.
var baseFuncs = sync.OnceValue(func() template.FuncMap {
	m := sprig.GenericFuncMap()
	for _, name := range denied {
		delete(m, name)
	}
	m["print"], m["printf"], m["println"] = fmt.Sprint, fmt.Sprintf, fmt.Sprintln
	m["html"], m["js"], m["urlquery"] = template.HTMLEscaper, template.JSEscaper, template.URLQueryEscaper
	m["call"] = func(any, ...any) (any, error) { return nil, fmt.Errorf("call is not allowed") }
	m[stepFunc] = func() string { return "" }
	return m
})

// bound returns the functions named in names, each wrapped so that it spends a step, is
// refused when its result could overrun the memory left, and is charged for what it built.
func (b *Budget) bound(names map[string]bool) template.FuncMap {
	base := baseFuncs()
	out := template.FuncMap{stepFunc: b.stepAction}
	for name := range names {
		if f, ok := base[name]; ok && name != stepFunc {
			out[name] = b.wrap(name, f)
		}
	}
	return out
}

func (b *Budget) wrap(name string, f any) any {
	fv := reflect.ValueOf(f)
	ft := fv.Type()
	call := fv.Call
	if ft.IsVariadic() {
		call = fv.CallSlice
	}
	return reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
		if err := b.before(name, args); err != nil {
			return failed(ft, err)
		}
		res := call(args)
		if len(res) > 0 && !passThrough[name] && !mutators[name] {
			if err := b.spend(sizeOf(res[0], b.left()+1, 0)); err != nil {
				return failed(ft, err)
			}
		}
		return res
	}).Interface()
}

// before spends the call's step and checks that its result fits what is left.
func (b *Budget) before(name string, args []reflect.Value) error {
	if err := b.step(); err != nil {
		return err
	}
	if passThrough[name] {
		return nil
	}
	limit := b.left() + 1
	if mutators[name] {
		// set: dict key value; unset: dict key; merge*: dst src...
		if len(args) == 0 {
			return nil
		}
		dst := args[0]
		var added int64
		for _, a := range args[1:] {
			if reaches(a, dst, limit) {
				return fmt.Errorf("%s would make a value that contains itself", name)
			}
			added += sizeOf(a, limit, 0)
		}
		return b.spend(added)
	}
	var size int64
	for _, a := range args {
		size += sizeOf(a, limit, 0)
		if size > limit {
			return b.check(size)
		}
	}
	mult, ok := expansion[name]
	if !ok {
		mult = 2
	}
	extra, err := extraFor(name, args)
	if err != nil {
		return err
	}
	if extra < 0 || extra > limit {
		return b.check(limit + 1)
	}
	return b.check(size*mult + extra)
}

// failed returns the zero results of ft with err as its error, or panics with err for a
// function without an error result (text/template turns the panic into an error).
func failed(ft reflect.Type, err error) []reflect.Value {
	n := ft.NumOut()
	if n == 0 || ft.Out(n-1) != reflect.TypeFor[error]() {
		panic(err)
	}
	out := make([]reflect.Value, n)
	for i := range n - 1 {
		out[i] = reflect.Zero(ft.Out(i))
	}
	out[n-1] = reflect.ValueOf(&err).Elem()
	return out
}

// extraFor is what a function's own arguments can add to its result beyond their size.
func extraFor(name string, args []reflect.Value) (int64, error) {
	str := func(i int) string {
		if i < len(args) {
			if v := deref(args[i]); v.Kind() == reflect.String {
				return v.String()
			}
			return fmt.Sprint(args[i].Interface())
		}
		return ""
	}
	num := func(i int) int64 {
		if i < len(args) {
			switch v := deref(args[i]); v.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				return v.Int()
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				if v.Uint() > 1<<62 {
					return 1 << 62
				}
				return int64(v.Uint())
			case reflect.Float32, reflect.Float64:
				return int64(min(max(v.Float(), -1<<62), 1<<62))
			}
		}
		return 0
	}
	mul := func(a, b int64) int64 {
		if a < 0 || b < 0 {
			return 0
		}
		if a != 0 && b > (1<<62)/a {
			return 1 << 62
		}
		return a * b
	}
	switch name {
	case "indent", "nindent": // indent n s
		return mul(max(num(0), 0), int64(strings.Count(str(1), "\n")+1)), nil
	case "replace": // replace old new s
		old, nw, s := str(0), str(1), str(2)
		return mul(int64(strings.Count(s, old)+1), int64(len(nw))), nil
	case "regexReplaceAll", "mustRegexReplaceAll", "regexReplaceAllLiteral", "mustRegexReplaceAllLiteral": // re s repl
		s, repl := str(1), str(2)
		return mul(int64(len(s)+1), int64(len(repl)+1)) * 2, nil
	case "wrapWith": // wrapWith n sep s
		n := max(num(0), 1)
		return mul(int64(len(str(2)))/n+1, int64(len(str(1)))), nil
	case "wrap":
		return int64(len(str(1))), nil
	case "join": // join sep list
		if len(args) > 1 {
			if v := deref(args[1]); v.Kind() == reflect.Slice || v.Kind() == reflect.Array {
				return mul(int64(v.Len()), int64(len(str(0)))), nil
			}
		}
	case "randAlphaNum", "randAlpha", "randAscii", "randNumeric":
		return mul(max(num(0), 0), 4), nil
	case "randBytes":
		return mul(max(num(0), 0), 3), nil
	case "splitList", "split", "toStrings": // splitList sep s
		s, sep := str(1), str(0)
		n := int64(strings.Count(s, sep) + 1)
		if name == "toStrings" {
			n = 1
			if len(args) > 0 {
				if v := deref(args[0]); v.Kind() == reflect.Slice || v.Kind() == reflect.Array {
					n = int64(v.Len())
				}
			}
		}
		return mul(n, 112), nil
	case "splitn": // splitn sep n s
		return mul(min(max(num(1), 0), int64(strings.Count(str(2), str(0))+1)), 112), nil
	case "regexSplit", "mustRegexSplit", "regexFindAll", "mustRegexFindAll": // re s n
		n := num(2)
		if n < 0 || n > int64(len(str(1))+1) {
			n = int64(len(str(1)) + 1)
		}
		return mul(n, 112), nil
	case "chunk", "mustChunk":
		if num(0) < 1 {
			return 0, fmt.Errorf("%s needs a size of 1 or more", name)
		}
		if len(args) > 1 {
			return mul(int64(deref(args[1]).Len()), 48), nil
		}
	case "uniq", "mustUniq":
		// Quadratic in the list's length.
		if len(args) > 0 {
			if v := deref(args[0]); (v.Kind() == reflect.Slice || v.Kind() == reflect.Array) && v.Len() > 4096 {
				return 0, fmt.Errorf("%s of more than 4096 items", name)
			}
		}
	case "printf":
		return printfExtra(str(0))
	case "toJson", "mustToJson", "toRawJson", "mustToRawJson":
		if len(args) > 0 {
			return jsonSize(args[0], false, 0, 64<<20), nil
		}
	case "toPrettyJson", "mustToPrettyJson":
		if len(args) > 0 {
			return jsonSize(args[0], true, 0, 64<<20), nil
		}
	}
	return 0, nil
}

// printfExtra is what a format's widths and precisions can write; a width taken from an
// argument ('*') is refused.
func printfExtra(format string) (int64, error) {
	var extra int64 = int64(len(format)) * 16
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) {
			c := format[i]
			switch {
			case c == '*':
				return 0, fmt.Errorf("printf widths from arguments (*) are not allowed")
			case c >= '0' && c <= '9':
				n := int64(0)
				for i < len(format) && format[i] >= '0' && format[i] <= '9' {
					n = min(n*10+int64(format[i]-'0'), 1<<40)
					i++
				}
				extra += n * 8
				continue
			case strings.IndexByte("+-# .[]", c) >= 0:
			default:
				goto next
			}
			i++
		}
	next:
	}
	return extra, nil
}

func deref(v reflect.Value) reflect.Value {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return v
		}
		v = v.Elem()
	}
	return v
}

// maxDepth bounds how deep a value may nest.
const maxDepth = 200

// sizeOf is what v costs in memory, counting every reference in full (what printing it
// would cost); it stops counting past limit, and a value nested deeper than maxDepth costs
// more than any limit.
func sizeOf(v reflect.Value, limit int64, depth int) int64 {
	if depth > maxDepth {
		return limit + 1
	}
	switch v.Kind() {
	case reflect.Invalid:
		return 0
	case reflect.String:
		return 16 + int64(v.Len())
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return 8
		}
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
			return 8 + int64(v.Elem().Type().Size())
		}
		return 8 + sizeOf(v.Elem(), limit, depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return 24 + int64(v.Len())
		}
		n := int64(24)
		for i := range v.Len() {
			n += sizeOf(v.Index(i), limit-n, depth+1)
			if n > limit {
				return n
			}
		}
		return n
	case reflect.Map:
		n := int64(48)
		it := v.MapRange()
		for it.Next() {
			n += 16 + sizeOf(it.Key(), limit-n, depth+1)
			n += sizeOf(it.Value(), limit-n, depth+1)
			if n > limit {
				return n
			}
		}
		return n
	case reflect.Struct:
		return int64(v.Type().Size())
	}
	return 8
}

// reaches tells whether target (a map) is v or is inside v; a walk past limit says yes.
func reaches(v, target reflect.Value, limit int64) bool {
	target = deref(target)
	if target.Kind() != reflect.Map {
		return false
	}
	var seen int64
	var walk func(reflect.Value, int) bool
	walk = func(v reflect.Value, depth int) bool {
		seen++
		if seen > limit/16 || depth > maxDepth {
			return true
		}
		v = deref(v)
		switch v.Kind() {
		case reflect.Map:
			if v.UnsafePointer() == target.UnsafePointer() {
				return true
			}
			it := v.MapRange()
			for it.Next() {
				if walk(it.Value(), depth+1) {
					return true
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				if walk(v.Index(i), depth+1) {
					return true
				}
			}
		}
		return false
	}
	return walk(v, 0)
}

// jsonSize bounds the length of v's JSON (escaping every byte as \u00XX at worst; pretty
// output indents each line by its depth).
func jsonSize(v reflect.Value, pretty bool, depth int, limit int64) int64 {
	if depth > maxDepth {
		return limit + 1
	}
	indent := int64(0)
	if pretty {
		indent = 1 + 2*int64(depth+1)
	}
	v = deref(v)
	switch v.Kind() {
	case reflect.String:
		return 2 + 6*int64(len(v.String()))
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return 2 + 2*int64(v.Len())
		}
		n := int64(2 + indent)
		for i := range v.Len() {
			n += 1 + indent + jsonSize(v.Index(i), pretty, depth+1, limit-n)
			if n > limit {
				return n
			}
		}
		return n
	case reflect.Map:
		n := int64(2 + indent)
		it := v.MapRange()
		for it.Next() {
			n += 3 + indent + 6*int64(len(fmt.Sprint(it.Key().Interface()))) + jsonSize(it.Value(), pretty, depth+1, limit-n)
			if n > limit {
				return n
			}
		}
		return n
	case reflect.Struct:
		return 64 + int64(v.Type().Size())*8
	}
	return 32
}

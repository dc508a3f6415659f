package cmp

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The messages of Argo CD's ConfigManagementPluginService (package plugin), encoded by hand
// with protowire: field numbers and types follow the service's published protocol, so Argo
// CD's repo-server talks to keyway as it talks to argocd-cmp-server. Only what keyway reads
// is decoded and only what it answers is encoded; unknown fields are skipped.

// metadata is ManifestRequestMetadata: the first message of every stream.
type metadata struct {
	AppName    string // 1
	AppRelPath string // 2
	Checksum   string // 3: hex SHA-256 of the gzipped tar that follows
	Size       int64  // 4: its length in bytes
	Env        []string
}

// streamRequest is AppStreamRequest: metadata (1) or a chunk of the tar (File, 2).
type streamRequest struct {
	Metadata *metadata
	Chunk    []byte
	HasChunk bool
}

func (r *streamRequest) unmarshal(b []byte) error {
	*r = streamRequest{}
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			m := &metadata{}
			if err := m.unmarshal(v); err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			r.Metadata = m
		case num == 2 && typ == protowire.BytesType:
			r.HasChunk = true
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if num == 1 && typ == protowire.BytesType {
					r.Chunk = append(r.Chunk, v...)
				}
				return nil
			})
		}
		return nil
	})
}

func (m *metadata) unmarshal(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			m.AppName = string(v)
		case num == 2 && typ == protowire.BytesType:
			m.AppRelPath = string(v)
		case num == 3 && typ == protowire.BytesType:
			m.Checksum = string(v)
		case num == 4 && typ == protowire.VarintType:
			n, _ := protowire.ConsumeVarint(v)
			m.Size = int64(n)
		case num == 5 && typ == protowire.BytesType:
			var name, value string
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ == protowire.BytesType && num == 1 {
					name = string(v)
				} else if typ == protowire.BytesType && num == 2 {
					value = string(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			m.Env = append(m.Env, name+"="+value)
		}
		return nil
	})
}

// fields calls f for each field of a message. For varints v holds the encoded varint, for
// length-delimited fields their content.
func fields(b []byte, f func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			var m int
			v, m = protowire.ConsumeBytes(b)
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				v = b[:n]
			}
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// empty is google.protobuf.Empty.
type empty struct{}

func (*empty) unmarshal([]byte) error { return nil }

// Announcement is a ParameterAnnouncement of Argo CD's repository API.
type Announcement struct {
	Name, Title, Tooltip string
	Required             bool
	ItemType             string
	CollectionType       string
	String               string
	Array                []string
	Map                  map[string]string
}

func (a Announcement) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	b = appendString(b, 2, a.Title)
	b = appendString(b, 3, a.Tooltip)
	if a.Required {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	b = appendString(b, 5, a.ItemType)
	b = appendString(b, 6, a.CollectionType)
	b = appendString(b, 7, a.String)
	for _, s := range a.Array {
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for k, v := range a.Map {
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, v)
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

// manifestResponse is ManifestResponse: one JSON object per manifest.
type manifestResponse struct{ Manifests []string }

func (r *manifestResponse) marshal() []byte {
	var b []byte
	for _, m := range r.Manifests {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, m)
	}
	return b
}

// repositoryResponse is RepositoryResponse, the answer to discovery.
type repositoryResponse struct{ Supported, DiscoveryEnabled bool }

func (r *repositoryResponse) marshal() []byte {
	return appendBools(nil, r.Supported, r.DiscoveryEnabled)
}

// checkResponse is CheckPluginConfigurationResponse.
type checkResponse struct{ DiscoveryConfigured, ProvideGitCreds bool }

func (r *checkResponse) marshal() []byte {
	return appendBools(nil, r.DiscoveryConfigured, r.ProvideGitCreds)
}

// parametersResponse is ParametersAnnouncementResponse.
type parametersResponse struct{ Announcements []Announcement }

func (r *parametersResponse) marshal() []byte {
	var b []byte
	for _, a := range r.Announcements {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, a.marshal())
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendBools encodes bool fields 1, 2, … (proto3: false is left out).
func appendBools(b []byte, vs ...bool) []byte {
	for i, v := range vs {
		if v {
			b = protowire.AppendTag(b, protowire.Number(i+1), protowire.VarintType)
			b = protowire.AppendVarint(b, 1)
		}
	}
	return b
}

// codec is the gRPC codec for these messages, in place of the generated protobuf code.
type codec struct{}

type marshaler interface{ marshal() []byte }
type unmarshaler interface{ unmarshal([]byte) error }

func (codec) Marshal(v any) ([]byte, error) {
	m, ok := v.(marshaler)
	if !ok {
		return nil, fmt.Errorf("cmp: cannot encode %T", v)
	}
	return m.marshal(), nil
}

func (codec) Unmarshal(data []byte, v any) error {
	u, ok := v.(unmarshaler)
	if !ok {
		return fmt.Errorf("cmp: cannot decode into %T", v)
	}
	return u.unmarshal(data)
}

func (codec) Name() string { return "proto" }

var errNoMetadata = errors.New("the stream did not start with the application's metadata")

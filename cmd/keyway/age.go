package main

import (
	"bytes"
	"fmt"
	"os"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/keyway-dev/keyway/sealing/agefile"
)

// sealAgeFile seals a secrets file value by value for age recipients.
func sealAgeFile(a *app, o *sealOptions) error {
	in, _, err := o.input(a)
	if err != nil {
		return err
	}
	var previous []byte
	var ids []age.Identity
	if o.Write != "" && len(o.AgeIdentities) > 0 {
		if prev, err := os.ReadFile(o.Write); err == nil && agefile.IsSealed(prev) {
			previous = prev
			if ids, err = readAgeIdentities(o.AgeIdentities); err != nil {
				return err
			}
		}
	}
	out, err := agefile.Seal(in, o.AgeRecipients, previous, ids)
	if err != nil {
		return err
	}
	return o.emit(a, out)
}

func readAgeIdentities(files []string) ([]age.Identity, error) {
	var ids []age.Identity
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--age-identity: %w", err)
		}
		got, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("--age-identity %s: malformed identity (want AGE-SECRET-KEY-1… lines)", f)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

func newUnsealCommand(a *app) *cobra.Command {
	var identities []string
	var file, write string
	cmd := &cobra.Command{
		Use:   "unseal",
		Short: "Open an age-sealed secrets file (made by keyway seal --age-recipient)",
		Long: `unseal decrypts a secrets file sealed value by value with keyway seal --age-recipient and
prints the plain YAML. Tampering — a value moved to another key, a renamed key, an edited
value or MAC, a removed value — is detected and named; no output is written then.`,
		Example: `  keyway unseal --age-identity ~/.config/keyway/age.txt -f secrets.enc.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if len(identities) == 0 {
				return usagef("--age-identity is required")
			}
			ids, err := readAgeIdentities(identities)
			if err != nil {
				return err
			}
			o := sealOptions{File: file, Write: write}
			in, source, err := o.input(a)
			if err != nil {
				return err
			}
			out, err := agefile.Open(in, ids)
			if err != nil {
				return fmt.Errorf("%s: %w", source, err)
			}
			return o.emit(a, out)
		},
	}
	cmd.Flags().StringSliceVar(&identities, "age-identity", nil, "age identity file(s)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "read from this file instead of stdin")
	cmd.Flags().StringVarP(&write, "output-file", "w", "", "write to this file (atomically) instead of stdout")
	return cmd
}

/** `kiln inspect`'s text output: one block per part, short digests, what each status means. */
import type { InspectReport, SignatureEntry, StatementSummary } from './report.ts';

const short = (d: string): string => d.slice(0, 19);

function statementLine(s: StatementSummary): string {
  if (s.error) return `    ${s.predicateType}: unreadable (${s.error})`;
  const subj = s.subjects.map((x) => short(x.digest)).join(', ');
  if (s.sbom)
    return `    SBOM ${s.sbom.format} ${s.sbom.version}: ${s.sbom.packages} packages (subject ${subj}${s.sbom.creator ? `, ${s.sbom.creator}` : ''})`;
  if (s.provenance) {
    const p = s.provenance;
    const lines = [
      `    provenance ${s.predicateType}: builder ${p.builderId}${p.platform ? `, platform ${p.platform}` : ''} (subject ${subj})`,
    ];
    lines.push(`      buildType ${p.buildType}`);
    for (const d of p.dependencies) lines.push(`      dependency ${d}`);
    return lines.join('\n');
  }
  return `    ${s.predicateType} (subject ${subj})`;
}

const STATUS: Record<SignatureEntry['status'], string> = {
  key: 'verified with --key',
  certificate: "verified with its certificate's key (chain and Rekor entry not checked)",
  failed: 'FAILED',
  unchecked: 'present, not verified',
};

function signatureLine(s: SignatureEntry): string {
  const who = s.keyless
    ? `keyless, identity ${s.identity ?? '?'}${s.issuer ? `, issuer ${s.issuer}` : ''}${s.rekorLogIndex !== undefined ? `, Rekor log index ${s.rekorLogIndex}` : ''}`
    : 'key';
  return `  ${short(s.subject)}: ${STATUS[s.status]}${s.reason ? ` (${s.reason})` : ''} [${who}]`;
}

export function formatInspect(r: InspectReport): string {
  const out = [`${r.reference}`, `digest ${r.digest} (${r.mediaType})`, 'manifests:'];
  for (const m of r.manifests) out.push(`  ${m.digest} ${m.platform ?? ''}`.trimEnd());
  out.push(r.attestations.length ? 'attestations:' : 'attestations: none');
  for (const a of r.attestations) {
    const of = a.platform ? `${short(a.subject)} ${a.platform}` : short(a.subject);
    out.push(`  ${a.manifest} for ${of} (found in ${a.sources.join(' and ')})`);
    for (const s of a.statements) out.push(statementLine(s));
  }
  out.push(r.signatures.length ? 'signatures:' : 'signatures: none');
  for (const s of r.signatures) out.push(signatureLine(s));
  if (r.unsigned.length) out.push(`not signed: ${r.unsigned.map(short).join(', ')}`);
  return `${out.join('\n')}\n`;
}

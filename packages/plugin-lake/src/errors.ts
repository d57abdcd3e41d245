/** Error codes the lake plugin raises, with what they mean and how to fix them (rendered into docs/errors.md). */
export const LAKE_ERROR_CODES = {
  ANCH_ERR_LAKE_CORRUPT: [
    'A load record or `manifest.json` does not parse, names a path outside its dataset, has a gap, or names a file that is neither published nor staged.',
    'Inspect the named file; load records are the source of truth, `manifest.json` can be deleted to rebuild it.',
  ],
  ANCH_ERR_LAKE_CONFLICT: [
    'Another writer committed the same load number meanwhile, or the dataset belongs to another uploader id.',
    'Give each uploader its own lake location; rerun.',
  ],
  ANCH_ERR_LAKE_WRITE: [
    'Writing a row group or publishing a file failed.',
    'See the cause; nothing of the load became visible (or the next run finishes publishing it).',
  ],
} as const satisfies Record<`ANCH_ERR_LAKE_${string}`, readonly [meaning: string, fix: string]>

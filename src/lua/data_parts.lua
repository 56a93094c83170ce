-- The parts of one release: <release prefix><id>:<part>. The records
-- themselves live once, in the shared records hash, named by digest.
local parts = {'meta', 'ids', 'digests', 'stats', 'withdrawn', 'index'}

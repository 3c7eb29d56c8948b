# fish completion for moe-inspect
complete -c moe-inspect -s b -l bandwidth -x -d 'memory bandwidth in GB/s for the decode bound'
complete -c moe-inspect -s c -l ctx -x -d 'context length for the KV cache'
complete -c moe-inspect -s h -l help -d 'print usage and exit'
complete -c moe-inspect -s j -l json -d 'one JSON object per input'
complete -c moe-inspect -s m -l metadata -d 'print metadata and side JSON files'
complete -c moe-inspect -s t -l tensors -d 'list every tensor'
complete -c moe-inspect -l tsv -d 'one tab-separated row per input'
complete -c moe-inspect -l version -d 'print version and exit'
